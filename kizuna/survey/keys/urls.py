from django.urls import path

from kizuna.survey.keys import views

app_name = "survey_keys"
urlpatterns = [
    path("", views.sc_key, name="sc-key"),
    path("regenerate/", views.regenerate, name="regenerate"),
]
