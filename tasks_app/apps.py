from django.apps import AppConfig


class TasksAppConfig(AppConfig):
    """Jobs: the model, services, selectors, kinds and Celery tasks."""

    name = "tasks_app"
    verbose_name = "Jobs"
