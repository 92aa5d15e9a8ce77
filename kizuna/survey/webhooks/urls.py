from django.urls import URLPattern

app_name = "survey_webhooks"
urlpatterns: list[URLPattern] = []
