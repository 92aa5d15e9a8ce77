"""Results pages of a survey (summaries, charts, individual responses, export)."""

from django.urls import path

from kizuna.survey import results_views

app_name = "survey_results"
urlpatterns = [
    path("<int:survey_pk>/", results_views.summary, name="summary"),
    path("<int:survey_pk>/responses/", results_views.response_list, name="responses"),
    path(
        "<int:survey_pk>/responses/<uuid:response_id>/",
        results_views.response_detail,
        name="response",
    ),
    path(
        "<int:survey_pk>/responses/<uuid:response_id>/delete/",
        results_views.delete_response,
        name="response-delete",
    ),
    path("<int:survey_pk>/export.csv", results_views.export_csv, name="export"),
]
