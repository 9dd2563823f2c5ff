"""Every change of a job's work attempts: the state changes a kind's work task makes.

A kind's work task carries the job's ``attempt`` (DESIGN.md "Supervision and recovery"): it
claims the attempt when it starts (:func:`work_claim`), beats while it runs
(:func:`work_heartbeat`, from ``tasks_app.heartbeat``), and its outcome counts only for that
attempt (:func:`job_succeed`, :func:`job_fail`, :func:`work_stopped`). A copy of an older
attempt (a redelivery after the visibility timeout, a duplicate send) changes nothing. When
its worker is lost, the supervisor calls :func:`work_retry_or_fail`.

Like ``tasks_app.services``, every change takes the job's row lock, and frames and tasks
leave after commit.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable
from typing import Any, Final

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from tasks_app import polling, services
from tasks_app.kinds import get_kind
from tasks_app.kinds.base import Progress
from tasks_app.models import PROGRESS_MESSAGE_MAX_CHARS, Job, JobState

logger = logging.getLogger(__name__)

#: ``retrying`` reason of a job whose work task's heartbeat stopped.
REASON_WORKER_LOST: Final = "worker lost"


def _end_by_work(job_id: uuid.UUID | str, state: str, record: Callable[[Job], None], attempt: int | None) -> bool:
    """End the job in ``state`` after ``record`` wrote the outcome on it (under the lock);
    a cancel asked meanwhile wins, and a final job, or one whose ``attempt`` moved on, is
    left alone."""
    with transaction.atomic():
        job = services.locked(job_id)
        if job is None or job.is_final:
            return False
        if attempt is not None and attempt != job.attempt:
            logger.warning(
                "job %s: outcome of attempt %s ignored (attempt %s is current)", job_id, attempt, job.attempt
            )
            return False
        if job.state == JobState.CANCELLING:
            services.finish(job, JobState.CANCELLED)
            return True
        record(job)
        services.finish(job, state)
        return True


def job_succeed(
    *, job_id: uuid.UUID | str, result: Any, progress: Progress | None = None, attempt: int | None = None
) -> bool:
    """Record the work's ``result`` (JSON-serialisable) and end the job ``succeeded``,
    with its last ``progress`` when given.

    A job whose cancellation was asked ends ``cancelled`` instead; a job already final, or
    whose current attempt is not ``attempt`` (when given), is left alone. Returns True when
    this call ended the job.
    """

    def record(job: Job) -> None:
        job.result = result
        if progress is not None:
            polling.apply_progress(job, progress)

    return _end_by_work(job_id, JobState.SUCCEEDED, record, attempt)


def job_fail(*, job_id: uuid.UUID | str, error: str, attempt: int | None = None) -> bool:
    """End the job ``failed`` with ``error`` (short human text, no traceback).

    A job whose cancellation was asked ends ``cancelled`` instead; a job already final, or
    whose current attempt is not ``attempt`` (when given), is left alone. Returns True when
    this call ended the job.
    """

    def record(job: Job) -> None:
        job.error = error[: services.ERROR_MAX_CHARS]

    return _end_by_work(job_id, JobState.FAILED, record, attempt)


def work_claim(*, job_id: uuid.UUID | str, attempt: int) -> Job | None:
    """Claim ``attempt`` of the job's work as it starts in a worker; returns the job when
    this copy of the work task is the one to run it, else None (do nothing).

    None when the job is gone or final, when ``attempt`` is not the current one, or when
    another copy of the attempt beats (a duplicate delivery). A job being cancelled ends
    ``cancelled`` here (its work never ran). A claim clears the ``retrying`` notice of a
    re-run, which viewers see.
    """
    now = timezone.now()
    with transaction.atomic():
        job = services.locked(job_id)
        if job is None or job.is_final or job.attempt != attempt:
            logger.info("job %s: attempt %s is not current; its work task does nothing", job_id, attempt)
            return None
        if job.heartbeat_at is not None and (now - job.heartbeat_at).total_seconds() < settings.JOB_HEARTBEAT_TIMEOUT_S:
            logger.info("job %s: attempt %s already runs elsewhere; this copy does nothing", job_id, attempt)
            return None
        if job.state == JobState.CANCELLING:
            services.finish(job, JobState.CANCELLED)
            return None
        job.work_started_at = job.heartbeat_at = now
        fields = ["work_started_at", "heartbeat_at"]
        if "retrying" in job.kind_state:
            job.kind_state = {k: v for k, v in job.kind_state.items() if k != "retrying"}
            job.progress_message = f"attempt {attempt} started"
            job.seq += 1
            fields += ["kind_state", "progress_message", "seq"]
            services.publish(job)
        job.save(update_fields=fields)
        return job


def work_heartbeat(job_id: uuid.UUID | str, attempt: int) -> bool:
    """Stamp the heartbeat of ``attempt`` of the job's work (one UPDATE); False when that
    attempt no longer counts (the job ended, or a newer attempt owns it)."""
    return bool(
        Job.objects.filter(pk=job_id, attempt=attempt, state__in=[JobState.RUNNING, JobState.CANCELLING]).update(
            heartbeat_at=timezone.now()
        )
    )


def work_stopped(*, job_id: uuid.UUID | str, attempt: int) -> bool:
    """The work of ``attempt`` stopped after a cancel (``JobCancelled``): a job being
    cancelled ends ``cancelled`` now. Returns True when this call ended the job."""
    with transaction.atomic():
        job = services.locked(job_id)
        if job is None or job.state != JobState.CANCELLING or job.attempt != attempt:
            return False
        services.finish(job, JobState.CANCELLED)
        return True


def work_retry_or_fail(job: Job, now: dt.datetime, reason: str, lost_for_s: float) -> None:
    """The work of a row-locked running job was lost (``reason``, e.g. ``worker lost``,
    no heartbeat for ``lost_for_s`` seconds): run it again as a new attempt when its kind's
    ``max_attempts`` allows, viewers seeing ``retrying``; else end it ``failed``.

    The old attempt's task is revoked with ``terminate`` (a stuck worker frees its slot;
    a dead one has nothing to stop) and is fenced by its attempt number either way.
    """
    kind = get_kind(job.kind)
    kind.stop(job)
    if job.attempt >= kind.max_attempts:
        error = f"{reason}: no heartbeat for {lost_for_s:.0f} s (attempt {job.attempt} of {kind.max_attempts})"
        services.finish(job, JobState.FAILED, error=error)
        return
    services.new_attempt(job, now)
    job.kind_state = {
        **job.kind_state,
        "retrying": {
            "attempt": job.attempt,
            "max_attempts": kind.max_attempts,
            "next_attempt_in_s": 0,
            "reason": reason,
        },
    }
    job.progress_current = 0
    job.progress_samples = [[max(0.0, (now - job.started_at).total_seconds()) if job.started_at else 0.0, 0]]
    job.progress_message = f"{reason}; attempt {job.attempt} of {kind.max_attempts} starting"[
        :PROGRESS_MESSAGE_MAX_CHARS
    ]
    job.seq += 1
    job.save()
    logger.warning(
        "job %s: %s after %.0f s without heartbeat; attempt %s sent", job.id, reason, lost_for_s, job.attempt
    )
    services.publish(job)
