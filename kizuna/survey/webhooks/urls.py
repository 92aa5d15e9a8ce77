from django.urls import path

from kizuna.survey.webhooks import views

app_name = "survey_webhooks"
urlpatterns = [
    path("", views.endpoint_list, name="endpoints"),
    path("<int:pk>/", views.endpoint_detail, name="endpoint"),
    path("<int:pk>/enable/", views.endpoint_enable, name="endpoint-enable"),
    path("<int:pk>/delete/", views.endpoint_delete, name="endpoint-delete"),
    path("<int:pk>/retry-failed/", views.endpoint_retry_failed, name="endpoint-retry-failed"),
    path("<int:pk>/resend/", views.endpoint_resend, name="endpoint-resend"),
    path(
        "<int:pk>/deliveries/<int:delivery_pk>/replay/",
        views.delivery_replay,
        name="delivery-replay",
    ),
]
