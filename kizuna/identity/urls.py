from django.contrib.auth import views as auth_views
from django.urls import path

from kizuna.identity import views

app_name = "identity"
urlpatterns = [
    path("accounts/sign-in/", views.sign_in, name="login"),
    path("accounts/sign-out/", auth_views.LogoutView.as_view(), name="logout"),
    path("mailbox/", views.mailbox, name="mailbox"),
    path("mailbox/<str:name>/", views.mailbox_message, name="mailbox-message"),
    path("language/", views.set_language, name="set-language"),
]
