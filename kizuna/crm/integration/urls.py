from django.urls import path

from kizuna.crm.integration import views
from kizuna.crm.integration.responses import views as responses_views

app_name = "crm_integration"

urlpatterns = [
    path("settings/", views.settings_page, name="settings"),
    path("settings/reconnect/", views.reconnect, name="reconnect"),
    path("settings/disable/", views.disable, name="disable"),
    path("settings/finish/", views.finish_disabling, name="finish-disabling"),
    path(
        "settings/finish-without-survey/",
        views.finish_without_survey,
        name="finish-without-survey",
    ),
    path("setup/", views.setup, name="setup-start"),
    path("setup/cancel/", views.setup_cancel, name="setup-cancel"),
    path("setup/<slug:step>/", views.setup, name="setup"),
    # Where the Survey service delivers a connection's webhooks (E4, D6).
    path("intake/<str:token>/", responses_views.intake, name="intake"),
]
