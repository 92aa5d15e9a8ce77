from django.urls import path

from kizuna.crm.integration.responses import views

app_name = "crm_survey_responses"
urlpatterns = [
    path("", views.delivery, name="delivery"),
    path("reconcile/", views.reconcile_now, name="reconcile"),
    path("unmatched/<int:pk>/dismiss/", views.dismiss_unmatched, name="dismiss-unmatched"),
    path("<str:module>/<int:pk>/", views.record_history, name="history"),
]
