from django.urls import URLPattern, include, path

from kizuna.crm import settings_views, views

app_name = "crm"


def _record_urls(module: str, singular: str) -> list[URLPattern]:
    kwargs = {"module": module}
    return [
        path(f"{module}/", views.record_list, kwargs, name=f"{singular}-list"),
        path(f"{module}/new/", views.record_create, kwargs, name=f"{singular}-create"),
        path(f"{module}/bulk/", views.record_bulk, kwargs, name=f"{singular}-bulk"),
        path(f"{module}/<int:pk>/", views.record_detail, kwargs, name=f"{singular}-detail"),
        path(f"{module}/<int:pk>/edit/", views.record_edit, kwargs, name=f"{singular}-edit"),
        path(f"{module}/<int:pk>/delete/", views.record_delete, kwargs, name=f"{singular}-delete"),
    ]


urlpatterns = [
    path("", views.home, name="home"),
    path("organizations/new/", views.organization_create, name="organization-create"),
    path("organizations/switch/", views.organization_switch, name="organization-switch"),
    *_record_urls("leads", "lead"),
    path("leads/<int:pk>/convert/", views.lead_convert, name="lead-convert"),
    *_record_urls("contacts", "contact"),
    path("settings/", settings_views.settings_home, name="settings"),
    path("settings/members/", settings_views.settings_members, name="settings-members"),
    path("settings/members/invite/", settings_views.member_invite, name="member-invite"),
    path("settings/members/<int:pk>/role/", settings_views.member_role, name="member-role"),
    path(
        "settings/members/<int:pk>/deactivate/",
        settings_views.member_deactivate,
        name="member-deactivate",
    ),
    path(
        "settings/members/<int:pk>/reactivate/",
        settings_views.member_reactivate,
        name="member-reactivate",
    ),
    path(
        "settings/invitations/<int:pk>/revoke/",
        settings_views.invitation_revoke,
        name="invitation-revoke",
    ),
    path(
        "settings/invitations/<int:pk>/resend/",
        settings_views.invitation_resend,
        name="invitation-resend",
    ),
    path("settings/extensions/", settings_views.settings_extensions, name="settings-extensions"),
    path("invitations/<str:token>/", settings_views.invitation, name="invitation"),
    path("api/v1/", include("kizuna.crm.api.v1_urls")),
]
