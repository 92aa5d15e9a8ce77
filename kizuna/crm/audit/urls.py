from django.urls import path

from kizuna.crm.audit import views

app_name = "crm_audit"
urlpatterns = [
    path("", views.audit_log, name="log"),
]
