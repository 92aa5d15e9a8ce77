from django.urls import include, path

from kizuna.survey import views

app_name = "survey"
urlpatterns = [
    path("", views.home, name="home"),
    path("results/", include("kizuna.survey.results_urls")),
    path("settings/sc-key/", include("kizuna.survey.keys.urls")),
    path("settings/webhooks/", include("kizuna.survey.webhooks.urls")),
    path("api/v1/", include("kizuna.survey.api_urls")),
]
