from django.urls import path

from kizuna.survey import views

app_name = "survey"
urlpatterns = [
    path("", views.home, name="home"),
]
