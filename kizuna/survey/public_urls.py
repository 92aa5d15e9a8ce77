"""Public survey pages: /s/<public id>/ (anonymous) and /s/i/<token>/ (one invitation)."""

from django.urls import path

from kizuna.survey import public_views

app_name = "survey_public"
urlpatterns = [
    path("i/<str:token>/", public_views.respond_to_invitation, name="invitation"),
    path("i/<str:token>/done/", public_views.invitation_done, name="invitation-done"),
    path("<str:public_id>/", public_views.respond, name="survey"),
    path("<str:public_id>/done/", public_views.done, name="done"),
]
