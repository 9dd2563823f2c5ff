from importlib import import_module

from django.apps import AppConfig
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class TasksAppConfig(AppConfig):
    """Jobs: the model, services, selectors, kinds and Celery tasks."""

    name = "tasks_app"
    verbose_name = "Jobs"

    def ready(self) -> None:
        """Register the job kinds of ``settings.JOB_KIND_MODULES`` (each module declares its
        kinds when imported: ``job_kind``, ``split_job_kind``, ``register``) and install the
        work adapter the kinds' Celery tasks call (``tasks_app.kinds.port``). Raises
        ``ImproperlyConfigured`` naming a module that cannot be imported."""
        from tasks_app import work
        from tasks_app.kinds.port import install_work_adapter

        install_work_adapter(work)
        for module in settings.JOB_KIND_MODULES:
            try:
                import_module(module)
            except ImportError as exc:
                raise ImproperlyConfigured(f"JOB_KIND_MODULES: cannot import {module!r}: {exc}") from exc
