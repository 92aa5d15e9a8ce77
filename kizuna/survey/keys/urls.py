from django.urls import URLPattern

app_name = "survey_keys"
urlpatterns: list[URLPattern] = []
