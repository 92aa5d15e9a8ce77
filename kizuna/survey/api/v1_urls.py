"""Mounts the REST API v1 (kizuna.survey.api.api) under the survey URLs as namespace
survey:survey_api_v1."""

from kizuna.survey.api.api import api

app_name = "survey_api_v1"
urlpatterns = api.urls[0]
