"""The Celery app: create it, load ``celeryconfig``, discover the apps' tasks."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj.settings")

app = Celery("proj")
app.config_from_object("celeryconfig")
app.autodiscover_tasks()
