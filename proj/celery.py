"""The Celery app: create it, load ``celeryconfig``, discover the apps' tasks."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj.settings")

# events: Celery's task events with a fix its 5.6.3 lacks (proj/celeryevents.py).
app = Celery("proj", events="proj.celeryevents:Events")
app.config_from_object("celeryconfig")
app.autodiscover_tasks()
