"""Mounts the REST API v1 (kizuna.crm.api.api) under the CRM URLs as namespace crm:crm_api_v1."""

from kizuna.crm.api.api import api

app_name = "crm_api_v1"
urlpatterns = api.urls[0]
