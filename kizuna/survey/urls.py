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
    path("members/<int:pk>/resend/", views.member_resend, name="member-resend"),
    path("portals/", views.portals, name="portals"),
    path("portals/<int:pk>/rename/", views.portal_rename, name="portal-rename"),
    path("portals/<int:pk>/delete/", views.portal_delete, name="portal-delete"),
    path("surveys/new/", views.survey_new, name="survey-new"),
    path("surveys/<int:pk>/", views.survey_detail, name="survey"),
    path("surveys/<int:pk>/edit/", views.survey_edit, name="survey-edit"),
    path("surveys/<int:pk>/open/", views.survey_open, name="survey-open"),
    path("surveys/<int:pk>/copy/", views.survey_copy, name="survey-copy"),
    path("surveys/<int:pk>/delete/", views.survey_delete, name="survey-delete"),
    path("surveys/<int:pk>/questions/new/", views.question_new, name="question-new"),
    path(
        "surveys/<int:pk>/questions/<int:question_pk>/",
        views.question_edit,
        name="question-edit",
    ),
    path(
        "surveys/<int:pk>/questions/<int:question_pk>/delete/",
        views.question_delete,
        name="question-delete",
    ),
    path(
        "surveys/<int:pk>/questions/<int:question_pk>/copy/",
        views.question_copy,
        name="question-copy",
    ),
    path(
        "surveys/<int:pk>/questions/<int:question_pk>/restore/",
        views.question_restore,
        name="question-restore",
    ),
    path(
        "surveys/<int:pk>/questions/<int:question_pk>/move/",
        views.question_move,
        name="question-move",
    ),
    path("surveys/<int:pk>/sections/new/", views.section_new, name="section-new"),
    path(
        "surveys/<int:pk>/sections/<int:section_pk>/",
        views.section_edit,
        name="section-edit",
    ),
    path(
        "surveys/<int:pk>/sections/<int:section_pk>/move/",
        views.section_move,
        name="section-move",
    ),
    path(
        "surveys/<int:pk>/sections/<int:section_pk>/delete/",
        views.section_delete,
        name="section-delete",
    ),
    path("results/", include("kizuna.survey.results_urls")),
    path("settings/sc-key/", include("kizuna.survey.keys.urls")),
    path("settings/webhooks/", include("kizuna.survey.webhooks.urls")),
    path("api/v1/", include("kizuna.survey.api_urls")),
]
