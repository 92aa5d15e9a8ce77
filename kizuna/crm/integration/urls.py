from django.urls import path

from kizuna.crm.integration import views

app_name = "crm_integration"

urlpatterns = [
    # Where the Survey service delivers a connection's webhooks (E4, D6).
    path("intake/<str:token>/", views.intake, name="intake"),
]
