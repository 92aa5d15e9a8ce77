from django.urls import path

from kizuna.crm.imports import views as views

app_name = "crm_imports"
urlpatterns = [
    path("", views.start, name="start"),
    path("<int:pk>/", views.detail, name="detail"),
    path("<int:pk>/mapping/", views.mapping, name="mapping"),
    path("<int:pk>/preview/", views.preview, name="preview"),
    path("<int:pk>/run/", views.run, name="run"),
    path("<int:pk>/discard/", views.discard, name="discard"),
    path("export/<str:module>/", views.export, name="export"),
]
