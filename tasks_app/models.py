"""Durable state: one ``Job`` row per job (one ``JobItem`` row per item of a split job), one
``Upload`` row per uploaded file.

Rows are changed only by ``tasks_app.services``; everything else reads them through
``tasks_app.selectors``.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

# The states are pure Python (tasks_app.states); named here too, where the model is.
from tasks_app.states import ACTIVE_STATES as ACTIVE_STATES
from tasks_app.states import FINAL_STATES as FINAL_STATES
from tasks_app.states import LIMITED_STATES as LIMITED_STATES
from tasks_app.states import PROGRESS_MESSAGE_MAX_CHARS as PROGRESS_MESSAGE_MAX_CHARS
from tasks_app.states import JobState as JobState


class Job(models.Model):
    """A long-running job started by a user; its progress is pushed to every viewer."""

    id = models.UUIDField(
        primary_key=True,
        default=uuid.uuid4,
        editable=False,
        verbose_name="id",
        help_text="Public id of the job, used in the WebSocket protocol.",
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="jobs",
        verbose_name="owner",
        help_text="The user who started the job; only they can see it.",
    )
    kind = models.CharField(max_length=64, verbose_name="kind", help_text="Name of the job kind (tasks_app/kinds).")
    params = models.JSONField(
        default=dict,
        blank=True,
        verbose_name="parameters",
        help_text="Validated parameters of the kind, as JSON.",
    )
    idempotency_key = models.CharField(  # noqa: DJ001 - NULL keeps the unique constraint partial
        max_length=64,
        null=True,
        blank=True,
        verbose_name="idempotency key",
        help_text="Client key that makes a repeated job.start return the same job.",
    )
    state = models.CharField(
        max_length=16,
        choices=JobState.choices,
        default=JobState.PENDING,
        verbose_name="state",
        help_text="Where the job is in its life.",
    )
    progress_current = models.BigIntegerField(
        default=0, verbose_name="progress current", help_text="Units done (e.g. bytes read)."
    )
    progress_total = models.BigIntegerField(
        null=True,
        blank=True,
        verbose_name="progress total",
        help_text="Units in all; empty when unknown.",
    )
    progress_message = models.CharField(
        max_length=PROGRESS_MESSAGE_MAX_CHARS,
        blank=True,
        default="",
        verbose_name="progress message",
        help_text="Short human text about the current step.",
    )
    result = models.JSONField(null=True, blank=True, verbose_name="result", help_text="Result of a succeeded job.")
    error = models.TextField(blank=True, default="", verbose_name="error", help_text="Why the job failed, for people.")
    seq = models.PositiveBigIntegerField(
        default=1,
        verbose_name="sequence",
        help_text="Grows by one with every saved change; clients drop frames with a lower one.",
    )
    poll_seq = models.PositiveIntegerField(
        default=0,
        verbose_name="poll sequence",
        help_text="Number of the poll the chain expects next; stale or duplicate polls do nothing.",
    )
    kind_state = models.JSONField(
        default=dict,
        blank=True,
        verbose_name="kind state",
        help_text="State the job's kind keeps between polls (e.g. the remote job id, retry counters).",
    )
    progress_samples = models.JSONField(
        default=list,
        blank=True,
        verbose_name="progress samples",
        help_text="Recent [seconds since start, current] pairs; the rate and ETA are computed from them.",
    )
    celery_task_id = models.CharField(
        max_length=255,
        blank=True,
        default="",
        verbose_name="run task id",
        help_text="Celery id of the run_job task.",
    )
    work_task_id = models.CharField(
        max_length=255,
        blank=True,
        default="",
        verbose_name="work task id",
        help_text="Celery id of the task doing the work, for kinds that run one.",
    )
    attempt = models.PositiveSmallIntegerField(
        default=0,
        verbose_name="attempt",
        help_text="Number of the current run of the work (1 for the first); work of another attempt writes nothing.",
    )
    work_sends = models.PositiveSmallIntegerField(
        default=0,
        verbose_name="work sends",
        help_text="How many times the current attempt's work task was sent (the supervisor re-sends a lost one).",
    )
    work_dispatched_at = models.DateTimeField(
        null=True, blank=True, verbose_name="work sent at", help_text="When the current attempt's work task was sent."
    )
    work_started_at = models.DateTimeField(
        null=True, blank=True, verbose_name="work started at", help_text="When the current attempt's work began."
    )
    heartbeat_at = models.DateTimeField(
        null=True,
        blank=True,
        verbose_name="heartbeat at",
        help_text="Last heartbeat of the current attempt's work task; a stale one means its worker died.",
    )
    chain_at = models.DateTimeField(
        null=True,
        blank=True,
        verbose_name="chain moved at",
        help_text="When the job's chain last moved (created, started, a poll claimed, or re-armed by the supervisor).",
    )
    poll_due_at = models.DateTimeField(
        null=True,
        blank=True,
        verbose_name="next poll due at",
        help_text="When the chain's next poll is due; a tick serves every job due by its time (empty once final).",
    )
    cancel_requested_at = models.DateTimeField(
        null=True, blank=True, verbose_name="cancel asked at", help_text="When the cancellation was asked."
    )
    created_at = models.DateTimeField(
        auto_now_add=True, verbose_name="created at", help_text="When the job was asked for."
    )
    started_at = models.DateTimeField(
        null=True, blank=True, verbose_name="started at", help_text="When the work started."
    )
    finished_at = models.DateTimeField(
        null=True, blank=True, verbose_name="finished at", help_text="When a final state was reached."
    )

    class Meta:
        ordering = ("-created_at",)
        verbose_name = "job"
        verbose_name_plural = "jobs"
        indexes = [
            models.Index(fields=["owner", "-created_at"], name="job_owner_created_idx"),
            models.Index(fields=["state"], name="job_state_idx"),
            models.Index(fields=["poll_due_at"], name="job_poll_due_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "idempotency_key"],
                condition=models.Q(idempotency_key__isnull=False),
                name="job_owner_idempotency_key_uniq",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.id} ({self.state})"

    @property
    def is_final(self) -> bool:
        """True once the job has succeeded, failed or been cancelled."""
        return self.state in FINAL_STATES


class ItemState(models.TextChoices):
    """States of one item of a split job: queued → running → succeeded | failed | cancelled."""

    QUEUED = "queued", "queued"
    RUNNING = "running", "running"
    SUCCEEDED = "succeeded", "succeeded"
    FAILED = "failed", "failed"
    CANCELLED = "cancelled", "cancelled"


ITEM_FINAL_STATES: frozenset[str] = frozenset({ItemState.SUCCEEDED, ItemState.FAILED, ItemState.CANCELLED})


class JobItem(models.Model):
    """One item of a split job (``tasks_app.kinds.split_kind``): the part of the work one
    Celery task does, with its own attempts, heartbeat and result."""

    job = models.ForeignKey(
        Job, on_delete=models.CASCADE, related_name="items", verbose_name="job", help_text="The job it is part of."
    )
    index = models.PositiveIntegerField(verbose_name="index", help_text="Position in the split, from 0.")
    item = models.JSONField(verbose_name="item", help_text="What the kind's split gave for this part.")
    size = models.BigIntegerField(default=1, verbose_name="size", help_text="Its share of the job's progress total.")
    state = models.CharField(
        max_length=16, choices=ItemState.choices, default=ItemState.QUEUED, verbose_name="state", help_text="Its state."
    )
    attempt = models.PositiveSmallIntegerField(
        default=1, verbose_name="attempt", help_text="Run of this item (1 first); older runs are fenced off."
    )
    task_id = models.CharField(
        max_length=64, blank=True, default="", verbose_name="task id", help_text="Celery task id of the current run."
    )
    sends = models.PositiveSmallIntegerField(
        default=1, verbose_name="sends", help_text="Times the current run's task was sent."
    )
    dispatched_at = models.DateTimeField(null=True, blank=True, verbose_name="dispatched at", help_text="Last send.")
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, verbose_name="heartbeat at", help_text="Last heartbeat of the running task."
    )
    result = models.JSONField(null=True, blank=True, verbose_name="result", help_text="What the item returned.")
    error = models.TextField(blank=True, default="", verbose_name="error", help_text="Why its last run failed.")
    finished_at = models.DateTimeField(null=True, blank=True, verbose_name="finished at", help_text="When it ended.")

    class Meta:
        ordering = ("job", "index")
        verbose_name = "job item"
        verbose_name_plural = "job items"
        constraints = [models.UniqueConstraint(fields=["job", "index"], name="job_item_job_index_uniq")]

    def __str__(self) -> str:
        return f"item {self.index} of {self.job_id} ({self.state})"


class ApiToken(models.Model):
    """A per-user token for scripts using the HTTP API (``Authorization: Bearer <token>``).

    Only the SHA-256 hex digest of the token is stored; the token itself is shown once, when
    it is created (``tasks_app.tokens.api_token_create``).
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="api_tokens",
        verbose_name="user",
        help_text="The user the token acts as.",
    )
    name = models.CharField(max_length=100, blank=True, default="", verbose_name="name", help_text="What it is for.")
    key_hash = models.CharField(
        max_length=64,
        unique=True,
        editable=False,
        verbose_name="key hash",
        help_text="SHA-256 hex digest of the token.",
    )
    prefix = models.CharField(
        max_length=12,
        editable=False,
        verbose_name="prefix",
        help_text="First characters of the token, to recognise it.",
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name="created at", help_text="When it was made.")
    last_used_at = models.DateTimeField(
        null=True, blank=True, verbose_name="last used at", help_text="When a request last carried it."
    )

    class Meta:
        ordering = ("-created_at",)
        verbose_name = "API token"
        verbose_name_plural = "API tokens"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"


def upload_path(instance: Upload, filename: str) -> str:
    """Storage path of an upload: per owner, named by the upload's id (never the client's name)."""
    return f"uploads/{instance.owner_id}/{instance.id}.csv"


class Upload(models.Model):
    """A file a user uploaded for a job kind to read (``csv_profile``)."""

    id = models.UUIDField(
        primary_key=True,
        default=uuid.uuid4,
        editable=False,
        verbose_name="id",
        help_text="Public id of the upload (upload_id in job parameters).",
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="uploads",
        verbose_name="owner",
        help_text="The user who uploaded the file.",
    )
    name = models.CharField(max_length=255, verbose_name="name", help_text="File name as the client sent it.")
    size = models.BigIntegerField(verbose_name="size", help_text="Size in bytes.")
    file = models.FileField(upload_to=upload_path, verbose_name="file", help_text="The stored file.")
    created_at = models.DateTimeField(auto_now_add=True, verbose_name="created at", help_text="When it was uploaded.")

    class Meta:
        ordering = ("-created_at",)
        verbose_name = "upload"
        verbose_name_plural = "uploads"
        indexes = [models.Index(fields=["owner", "-created_at"], name="upload_owner_created_idx")]

    def __str__(self) -> str:
        return f"{self.name} ({self.size} bytes)"
