"""Results pages of a survey (summaries, charts, individual responses, export)."""

from django.urls import URLPattern

app_name = "survey_results"
urlpatterns: list[URLPattern] = []
