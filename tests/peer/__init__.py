"""The peer of ``tests/bench_peer.py``: a minimal Django project that shows job progress the way
celery-progress 0.5 documents it (its README "Usage"), run only from the bench's own venv
(``.bench/peer-venv``), never imported by the project.

A Celery task records its steps with ``celery_progress.backend.ProgressRecorder`` into a Redis
result backend; ``celery_progress.views.get_progress`` answers at ``/celery-progress/<task_id>/``.
The Celery app is imported here, as Celery's "First steps with Django" does, so that the web
process's ``AsyncResult`` reads the configured backend.
"""

from tests.peer.celeryapp import app as celery_app

__all__ = ["celery_app"]
