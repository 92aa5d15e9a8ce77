from django.urls import URLPattern

app_name = "crm_api"
urlpatterns: list[URLPattern] = []
