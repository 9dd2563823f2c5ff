"""HTTP URLs: the dashboard and job pages, uploads, the JSON API, Django's login, the admin and
the operators' Prometheus metrics."""

from django.contrib import admin
from django.urls import include, path

from proj.metrics import metrics_view
from tasks_app import views
from tasks_app.api import api

urlpatterns = [
    path("", views.index, name="index"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("uploads/", views.upload_create_view, name="upload-create"),
    path("jobs/<uuid:job_id>/", views.job_detail, name="job-detail"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("metrics", metrics_view, name="metrics"),
]
