"""Public survey pages: /s/<public id>/ (anonymous) and /s/i/<token>/ (one invitation)."""

from django.urls import path

from kizuna.survey.public import views

app_name = "survey_public"
urlpatterns = [
    path("i/<str:token>/", views.respond_to_invitation, name="invitation"),
    path("i/<str:token>/done/", views.invitation_done, name="invitation-done"),
    path("<str:public_id>/", views.respond, name="survey"),
    path("<str:public_id>/done/", views.done, name="done"),
]
