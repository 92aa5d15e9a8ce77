from django.urls import path

from kizuna.survey.audit import views

app_name = "survey_audit"
urlpatterns = [
    path("", views.audit_log, name="log"),
]
