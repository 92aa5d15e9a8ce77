from django.urls import path

from kizuna.crm.mail import views

app_name = "crm_mail"
urlpatterns = [
    path("", views.mail_home, name="home"),
    path("templates/", views.template_list, name="templates"),
    path("templates/new/", views.template_create, name="template-create"),
    path("templates/<int:pk>/", views.template_detail, name="template"),
    path("templates/<int:pk>/edit/", views.template_edit, name="template-edit"),
    path("templates/<int:pk>/clone/", views.template_clone, name="template-clone"),
    path("templates/<int:pk>/delete/", views.template_delete, name="template-delete"),
    path("compose/", views.compose, name="compose"),
    path("sent/", views.batch_list, name="batches"),
    path("sent/<int:pk>/", views.batch_detail, name="batch"),
    path("unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
]
