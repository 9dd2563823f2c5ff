"""celery-progress's URLs where its README puts them. The README writes
``path(r'^celery-progress/', include('celery_progress.urls'))``, which ``path`` would match
literally, caret and all; ``re_path`` serves the prefix it means."""

from django.urls import include, re_path

urlpatterns = [
    re_path(r"^celery-progress/", include("celery_progress.urls")),
]
