from django.urls import include, path

from kizuna.crm import views

app_name = "crm"
urlpatterns = [
    path("", views.home, name="home"),
    path("mail/", include("kizuna.crm.mail.urls")),
    path("imports/", include("kizuna.crm.imports.urls")),
    path("api-tokens/", include("kizuna.crm.api.urls")),
]
