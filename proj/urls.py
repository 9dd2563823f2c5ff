"""HTTP URLs: the page, uploads, Django's login and the admin."""

from django.contrib import admin
from django.urls import include, path

from tasks_app import views

urlpatterns = [
    path("", views.index, name="index"),
    path("uploads/", views.upload_create_view, name="upload-create"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
]
