from django.urls import path

from kizuna.crm.api import views as views

app_name = "crm_api"
urlpatterns = [
    path("", views.token_list, name="tokens"),
    path("<int:pk>/revoke/", views.token_revoke, name="token-revoke"),
]
