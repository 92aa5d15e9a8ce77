"""The builder's pages under /survey/surveys/, in the `survey` namespace (survey:survey-edit)."""

from django.urls import path

from kizuna.survey.builder import views

urlpatterns = [
    path("new/", views.survey_new, name="survey-new"),
    path("<int:pk>/", views.survey_detail, name="survey"),
    path("<int:pk>/edit/", views.survey_edit, name="survey-edit"),
    path("<int:pk>/open/", views.survey_open, name="survey-open"),
    path("<int:pk>/copy/", views.survey_copy, name="survey-copy"),
    path("<int:pk>/delete/", views.survey_delete, name="survey-delete"),
    path("<int:pk>/questions/new/", views.question_new, name="question-new"),
    path("<int:pk>/questions/<int:question_pk>/", views.question_edit, name="question-edit"),
    path(
        "<int:pk>/questions/<int:question_pk>/delete/",
        views.question_delete,
        name="question-delete",
    ),
    path("<int:pk>/questions/<int:question_pk>/copy/", views.question_copy, name="question-copy"),
    path(
        "<int:pk>/questions/<int:question_pk>/restore/",
        views.question_restore,
        name="question-restore",
    ),
    path("<int:pk>/questions/<int:question_pk>/move/", views.question_move, name="question-move"),
    path("<int:pk>/sections/new/", views.section_new, name="section-new"),
    path("<int:pk>/sections/<int:section_pk>/", views.section_edit, name="section-edit"),
    path("<int:pk>/sections/<int:section_pk>/move/", views.section_move, name="section-move"),
    path("<int:pk>/sections/<int:section_pk>/delete/", views.section_delete, name="section-delete"),
]
