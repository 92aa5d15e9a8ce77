from django.urls import URLPattern

app_name = "crm_mail"
urlpatterns: list[URLPattern] = []
