from django.urls import URLPattern

app_name = "crm_imports"
urlpatterns: list[URLPattern] = []
