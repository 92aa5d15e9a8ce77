"""Results pages of a survey (summaries, charts, individual responses, export)."""

from django.urls import path

from kizuna.survey.results import views

app_name = "survey_results"
urlpatterns = [
    path("<int:survey_pk>/", views.summary, name="summary"),
    path("<int:survey_pk>/responses/", views.response_list, name="responses"),
    path(
        "<int:survey_pk>/responses/<uuid:response_id>/",
        views.response_detail,
        name="response",
    ),
    path(
        "<int:survey_pk>/responses/<uuid:response_id>/delete/",
        views.delete_response,
        name="response-delete",
    ),
    path("<int:survey_pk>/export.csv", views.export_csv, name="export"),
]
