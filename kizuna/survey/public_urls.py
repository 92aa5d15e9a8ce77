"""Public survey pages: /s/<public id>/ (anonymous) and /s/i/<token>/ (one invitation)."""

from django.urls import URLPattern

app_name = "survey_public"
urlpatterns: list[URLPattern] = []
