"""Project package: settings, ASGI entry point, URLs and the Celery app."""

from proj.celery import app as celery_app

__all__ = ("celery_app",)
