"""Admin for operators: jobs, uploads, API tokens, and Celery's task results.

Nothing here changes a job by hand: job pages are view-only (every change goes through
``tasks_app.services``), and the one action, "cancel selected jobs", calls
``services.job_cancel`` and reports each job's outcome. Each job links to its Celery task
results (django-celery-results), whose list shows task name, arguments, worker, and start and
end times (``result_extended`` and ``task_track_started`` in ``celeryconfig``).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Final

from celery.states import UNREADY_STATES
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.text import Truncator
from django_celery_results.admin import TaskResultAdmin as CeleryTaskResultAdmin
from django_celery_results.models import TaskResult

from tasks_app import services
from tasks_app.errors import ApplicationError
from tasks_app.kinds import REGISTRY, JobKind, SplitKind
from tasks_app.models import ApiToken, Job, JobItem, JobState, Upload
from tasks_app.selectors import percent_of

#: Characters of a job's id shown in lists (enough to tell jobs apart by eye; search takes all).
SHORT_ID_CHARS = 8
#: Characters of a progress message or error shown in the job list (admin.css also clips it to
#: the column's width; the whole text is in the cell's title).
LIST_MESSAGE_CHARS = 80
#: Dates in the job list: short, and the same width on every row ("2026-12-01 15:04").
LIST_DATETIME_FORMAT: Final = "Y-m-d H:i"
#: Times in the task-result list, whose date hierarchy gives the day ("15:04:05").
LIST_TIME_FORMAT: Final = "H:i:s"
#: The whole date and time, in titles ("2026-12-01 15:04:05").
FULL_DATETIME_FORMAT: Final = "Y-m-d H:i:s"
#: Narrow columns for the lists (issue 10: they must fit a 1,400 px window with the sidebar open).
ADMIN_CSS: Final = {"all": ("jobs/admin.css",)}
#: What an empty cell shows.
EMPTY: Final = "—"


def clipped(text: str, limit: int | None = None) -> SafeString:
    """A list cell that admin.css clips to its column with an ellipsis (``class="clip"``); the
    whole ``text`` is in its ``title``. With ``limit``, the text shown is at most that many
    characters too."""
    shown = Truncator(text).chars(limit) if limit is not None else text
    return format_html('<span class="clip" title="{}">{}</span>', text, shown)


def list_datetime(value: dt.datetime | None, shown: str = LIST_DATETIME_FORMAT) -> str:
    """``value`` in the current time zone in the ``shown`` format (a Django date format), the
    whole date and time in its title; ``EMPTY`` for None."""
    if value is None:
        return EMPTY
    local = timezone.localtime(value)
    return format_html(
        '<time datetime="{}" title="{}">{}</time>',
        value.isoformat(),
        formats.date_format(local, FULL_DATETIME_FORMAT),
        formats.date_format(local, shown),
    )


def duration_text(seconds: float) -> str:
    """``"0.250 s"``, ``"42.0 s"``, ``"3 min 05 s"``, ``"1 h 02 min"``: how long something ran."""
    if seconds < 10:
        return f"{seconds:.3f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def task_results_url(job: Job) -> str | None:
    """Admin URL of the Celery task results of ``job`` (its run task and work task; a split
    job's items and merge too), or None."""
    task_ids = (REGISTRY.get(job.kind) or JobKind()).task_ids(job)
    if not task_ids:
        return None
    changelist = reverse("admin:django_celery_results_taskresult_changelist")
    return f"{changelist}?task_id__in={','.join(task_ids)}"


class JobItemInline(admin.TabularInline):  # type: ignore[type-arg]
    """The items of a split job, read-only, in item order."""

    model = JobItem
    fields = ("index", "state", "attempt", "size", "item", "error", "task_id", "heartbeat_at", "finished_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Job | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Job | None = None) -> bool:
        return False


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Jobs: filter by state, kind, owner and date; search ids and messages; cancel active jobs."""

    list_display = (
        "short_id",
        "kind",
        "state",
        "owner",
        "percent",
        "message",
        "created",
        "task_results_link",
    )
    list_display_links = ("short_id",)
    # Only the users who own something, not every account, in the owner/user filters.
    list_filter = ("state", "kind", ("owner", admin.RelatedOnlyFieldListFilter), "created_at")
    search_fields = (
        "id",
        "kind",
        "owner__username",
        "progress_message",
        "error",
        "celery_task_id",
        "work_task_id",
    )
    date_hierarchy = "created_at"
    list_select_related = ("owner",)
    list_per_page = 50
    fieldsets = (
        (None, {"fields": ("id", "kind", "owner", "state", "params", "idempotency_key")}),
        (
            "Progress",
            {"fields": ("percent", "progress_current", "progress_total", "progress_message", "progress_samples")},
        ),
        ("Outcome", {"fields": ("result", "error")}),
        (
            "Celery",
            {"fields": ("task_results_link", "celery_task_id", "work_task_id", "seq", "poll_seq", "kind_state")},
        ),
        (
            "Supervision",
            {
                "fields": (
                    "attempt",
                    "work_sends",
                    "work_dispatched_at",
                    "work_started_at",
                    "heartbeat_at",
                    "chain_at",
                    "poll_due_at",
                    "cancel_requested_at",
                )
            },
        ),
        ("Times", {"fields": ("created_at", "started_at", "finished_at")}),
    )
    # Every field is machine-written; the computed ones must be listed for the view-only page.
    readonly_fields = ("percent", "task_results_link")
    actions = ("cancel_selected",)

    def get_inlines(self, request: HttpRequest, obj: Job | None) -> tuple[type[JobItemInline], ...]:
        """The items of a split job; other jobs have none."""
        return (JobItemInline,) if obj is not None and isinstance(REGISTRY.get(obj.kind), SplitKind) else ()

    class Media:
        css = ADMIN_CSS

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # jobs start through the services (the page, the socket, the API)

    def has_change_permission(self, request: HttpRequest, obj: Job | None = None) -> bool:
        # A job's page is view-only; the change permission on the model still gates the
        # cancel action (which Django checks with obj=None).
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Job | None = None) -> bool:
        # Deleting an active job would strand its work and its viewers' sockets without a
        # final frame: cancel it first. (Django checks each object, in bulk deletes too.)
        return (obj is None or obj.is_final) and super().has_delete_permission(request, obj)

    @admin.display(description="id", ordering="id")
    def short_id(self, obj: Job) -> str:
        return str(obj.id)[:SHORT_ID_CHARS]

    @admin.display(description="%")
    def percent(self, obj: Job) -> str:
        value = percent_of(obj.progress_current, obj.progress_total)
        return "—" if value is None else f"{value:.1f}%"

    @admin.display(description="message")
    def message(self, obj: Job) -> str:
        text = obj.error if obj.state == JobState.FAILED and obj.error else obj.progress_message
        return clipped(text, LIST_MESSAGE_CHARS) if text else EMPTY

    @admin.display(description="created", ordering="created_at")
    def created(self, obj: Job) -> str:
        return list_datetime(obj.created_at)

    @admin.display(description="tasks")
    def task_results_link(self, obj: Job) -> str:
        url = task_results_url(obj)
        if url is None:
            return EMPTY
        return format_html('<a class="task-results-link" href="{}">results</a>', url)

    @admin.action(description="Cancel selected jobs", permissions=("change",))
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        """Ask ``services.job_cancel`` to cancel each selected job; one message per job."""
        for job in queryset.select_related("owner"):
            label = f"Job {str(job.id)[:SHORT_ID_CHARS]} ({job.kind})"
            try:
                now = services.job_cancel(owner=job.owner, job_id=job.id)
            except ApplicationError as exc:
                self.message_user(request, f"{label} not cancelled: {exc.message}.", messages.WARNING)
                continue
            self.log_change(request, now, f"Cancel asked in the admin; the job is now {now.state}.")
            if now.state == JobState.CANCELLING:
                text = f"{label} is cancelling: its work was asked to stop, and its next poll ends it cancelled."
            else:
                text = f"{label} is {now.state}."
            self.message_user(request, text, messages.SUCCESS)


@admin.register(Upload)
class UploadAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Uploaded files, read-only."""

    list_display = ("id", "name", "size", "owner", "created_at")
    list_filter = (("owner", admin.RelatedOnlyFieldListFilter), "created_at")
    search_fields = ("id", "name", "owner__username")
    date_hierarchy = "created_at"
    list_select_related = ("owner",)
    readonly_fields = ("id", "owner", "name", "size", "file", "created_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """API tokens: see who has one and when it was last used, rename or delete (revoke) one.

    No add here: a token is shown only once, when it is created, so tokens are made by
    ``manage.py api_token create`` or the API (the changelist says so).
    """

    list_display = ("prefix_shown", "name", "user", "created_at", "last_used_at")
    list_filter = (("user", admin.RelatedOnlyFieldListFilter), "created_at", "last_used_at")
    search_fields = ("prefix", "name", "user__username")
    date_hierarchy = "created_at"
    list_select_related = ("user",)
    fields = ("prefix", "name", "user", "created_at", "last_used_at")
    readonly_fields = ("prefix", "user", "created_at", "last_used_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # the token must be shown once at creation: manage.py api_token create

    @admin.display(description="prefix", ordering="prefix")
    def prefix_shown(self, obj: ApiToken) -> str:
        return f"{obj.prefix}…"


admin.site.unregister(TaskResult)


def decoded_args(stored: str | None) -> str:
    """Task arguments as Celery wrote them (``"['<job id>']"``), without the JSON quoting that
    django-celery-results stores them in."""
    try:
        value = json.loads(stored or "")
    except ValueError:
        return stored or ""
    return value if isinstance(value, str) else str(stored)


@admin.register(TaskResult)
class TaskResultAdmin(CeleryTaskResultAdmin):  # type: ignore[misc]
    """django-celery-results' admin, read-only, listing what an operator looks for first.

    The list adds the arguments (a job's id for ``tasks_app.run_job`` and the kinds' work
    tasks) and when the task started; ``tasks_app.poll_job`` stores no result (see
    ``tasks_app.tasks``), so its runs are seen in Flower only.
    """

    # Upstream lists task_id, periodic_task_name, task_name, date_done, status, worker
    # (django_celery_results/admin.py line 21, TaskResultAdmin.list_display), too wide for a
    # 1,400 px window beside Django's sidebars: no periodic task stores results here, the
    # start time is on each result's page (runtime shows the span), and the date of ``done``
    # is in the date hierarchy above the list and in the cell's title.
    list_display = ("task_id", "task_name", "arguments", "status", "worker_name", "done", "runtime")
    list_display_links = ("task_id",)
    list_filter = ("status", "task_name", "worker", "date_done")

    class Media:
        css = ADMIN_CSS

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # results are written by the workers

    def has_change_permission(self, request: HttpRequest, obj: TaskResult | None = None) -> bool:
        return False  # view and delete only

    @admin.display(description="arguments", ordering="task_args")
    def arguments(self, obj: TaskResult) -> str:
        return clipped(decoded_args(obj.task_args))

    @admin.display(description="worker", ordering="worker")
    def worker_name(self, obj: TaskResult) -> str:
        return clipped(obj.worker) if obj.worker else EMPTY

    @admin.display(description="done", ordering="date_done")
    def done(self, obj: TaskResult) -> str:
        return list_datetime(obj.date_done, LIST_TIME_FORMAT)

    @admin.display(description="runtime")
    def runtime(self, obj: TaskResult) -> str:
        # The seconds a task ran are what one compares; the list's dates show whole seconds.
        if obj.date_started is None or obj.date_done is None or obj.status in UNREADY_STATES:
            return EMPTY
        return duration_text((obj.date_done - obj.date_started).total_seconds())
