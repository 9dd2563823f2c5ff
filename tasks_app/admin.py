"""Admin: jobs and uploads, machine-written fields read-only, cancel through the service."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from tasks_app import services
from tasks_app.errors import ApplicationError
from tasks_app.models import ACTIVE_STATES, Job, Upload
from tasks_app.selectors import percent_of


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Jobs: filter by state, kind, owner and date; cancel selected active jobs."""

    list_display = ("id", "kind", "state", "owner", "percent", "progress_message", "created_at", "finished_at")
    list_filter = ("state", "kind", "owner", "created_at")
    search_fields = ("id", "kind", "owner__username", "progress_message", "error", "celery_task_id")
    date_hierarchy = "created_at"
    list_select_related = ("owner",)
    readonly_fields = (
        "id",
        "owner",
        "kind",
        "params",
        "idempotency_key",
        "state",
        "progress_current",
        "progress_total",
        "progress_message",
        "result",
        "error",
        "seq",
        "poll_seq",
        "task_results",
        "celery_task_id",
        "work_task_id",
        "created_at",
        "started_at",
        "finished_at",
    )
    actions = ("cancel_selected",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # jobs start through the services (the page or the socket)

    @admin.display(description="percent")
    def percent(self, obj: Job) -> str:
        value = percent_of(obj.progress_current, obj.progress_total)
        return "—" if value is None else f"{value:.1f}%"

    @admin.display(description="Celery task results")
    def task_results(self, obj: Job) -> str:
        if not (obj.celery_task_id or obj.work_task_id):
            return "—"
        url = reverse("admin:django_celery_results_taskresult_changelist")
        return format_html('<a href="{}?q={}">task results of this job</a>', url, str(obj.id))

    @admin.action(description="Cancel selected jobs")
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        done = 0
        for job in queryset.filter(state__in=ACTIVE_STATES):
            try:
                services.job_cancel(owner=job.owner, job_id=job.id)
                done += 1
            except ApplicationError as exc:
                self.message_user(request, f"{job.id}: {exc.message}", messages.WARNING)
        self.message_user(request, f"Cancellation asked for {done} job(s).", messages.SUCCESS)


@admin.register(Upload)
class UploadAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Uploaded files, read-only."""

    list_display = ("id", "name", "size", "owner", "created_at")
    list_filter = ("owner", "created_at")
    search_fields = ("id", "name", "owner__username")
    date_hierarchy = "created_at"
    readonly_fields = ("id", "owner", "name", "size", "file", "created_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
