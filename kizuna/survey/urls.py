from django.urls import include, path

from kizuna.survey import views

app_name = "survey"
urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/new/", views.account_new, name="account-new"),
    path("accounts/switch/", views.account_switch, name="account-switch"),
    path("members/", views.members, name="members"),
    path("members/<int:pk>/role/", views.member_role, name="member-role"),
    path("members/<int:pk>/remove/", views.member_remove, name="member-remove"),
    path(
        "members/invitations/<int:pk>/resend/",
        views.member_invitation_resend,
        name="member-invitation-resend",
    ),
    path(
        "members/invitations/<int:pk>/withdraw/",
        views.member_invitation_withdraw,
        name="member-invitation-withdraw",
    ),
    path("invitations/<int:pk>/accept/", views.invitation_accept, name="invitation-accept"),
    path("invitations/<int:pk>/decline/", views.invitation_decline, name="invitation-decline"),
    path("join/<str:token>/", views.join, name="join"),
    path("portals/", views.portals, name="portals"),
    path("portals/<int:pk>/rename/", views.portal_rename, name="portal-rename"),
    path("portals/<int:pk>/delete/", views.portal_delete, name="portal-delete"),
    path("surveys/", include("kizuna.survey.builder.urls")),
    path("results/", include("kizuna.survey.results.urls")),
    path("settings/sc-key/", include("kizuna.survey.keys.urls")),
    path("settings/webhooks/", include("kizuna.survey.webhooks.urls")),
    path("settings/audit-log/", include("kizuna.survey.audit.urls")),
    path("api/v1/", include("kizuna.survey.api.v1_urls")),
]
