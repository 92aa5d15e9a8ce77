from django.urls import path

from kizuna.crm.integration.sending import views

app_name = "crm_survey_sending"
urlpatterns = [
    path("", views.send_survey, name="send"),
]
