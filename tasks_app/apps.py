from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class TasksAppConfig(AppConfig):
    """Jobs: the model, services, selectors, kinds and Celery tasks."""

    name = "tasks_app"
    verbose_name = "Jobs"

    def ready(self) -> None:
        """Register every job kind in every process (web, workers, commands): the built-in
        kinds, and each installed app's ``jobkinds`` module (README "Add your own job kind")."""
        import tasks_app.kinds  # noqa: F401 - built-in kinds register on import
        from tasks_app import work
        from tasks_app.kinds.port import install_work_adapter

        install_work_adapter(work)

        autodiscover_modules("jobkinds")
