"""The supervisor: repairs what the poll chain cannot repair itself (DESIGN.md "Supervision
and recovery"; README "Reliability").

``celery beat`` sends ``tasks_app.supervise`` to the progress queue every
``SUPERVISOR_INTERVAL_S`` seconds; each pass (:func:`supervise`) decides from the database
alone, and every repair takes the job's row lock, checks its condition again and is safe to
repeat (a repair that races the chain, or a second supervisor, changes nothing twice):

- **a job that never started** (``pending``, its ``run_job`` lost with the broker's queue):
  ``run_job`` is sent again (it does nothing for a job that is no longer pending);
- **a chain that stopped** (the next poll is ``OVERDUE_GRACE_S`` past due: the worker
  holding its tick or its ``poll_job`` died, or Redis came back empty): the poll of the
  current ``poll_seq`` is scheduled again (``services.schedule_poll``: due now, its tick
  armed); the original, if it comes back after the visibility timeout, finds ``poll_seq``
  moved on and does nothing;
- **work that never started** (its task was sent but no heartbeat came within
  ``JOB_HEARTBEAT_TIMEOUT_S``): the same attempt's task is sent again, with backoff (it
  may only be waiting behind busy workers; a duplicate finds the attempt claimed);
- **work that died** (heartbeat older than ``JOB_HEARTBEAT_TIMEOUT_S``): past its time
  limit the job fails; else it runs again as a new attempt, up to the kind's
  ``max_attempts``, then fails with the reason ``worker lost``;
- **a cancel nobody confirmed** within ``CANCEL_CONFIRM_TIMEOUT_S``: the work is
  terminated and the job ends ``cancelled``;
- **the items of a split job** (``tasks_app.items.items_repair``): an item task that never
  started is sent again, an item whose heartbeat stopped runs again (up to the kind's
  ``item_attempts``), a merge never claimed is sent again.

:func:`housekeep` (task ``tasks_app.housekeep``, every ``HOUSEKEEPING_INTERVAL_S``) deletes
expired Celery results, uploads no job refers to, and recorded progress of finished jobs.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections import Counter
from typing import Final

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from tasks_app import attempts, items, metrics, services
from tasks_app.kinds import get_kind
from tasks_app.kinds.split_kind import SplitKind
from tasks_app.models import FINAL_STATES, Job, JobState, Upload
from tasks_app.progress import clear_recorded, recorded_job_ids

logger = logging.getLogger(__name__)

#: Seconds a job's next step may be late before the supervisor repairs it.
OVERDUE_GRACE_S: Final = 3.0
#: Seconds a cancel may stay unconfirmed before the supervisor ends the job ``cancelled``.
CANCEL_CONFIRM_TIMEOUT_S: Final = 5.0
#: Longest wait between two re-sends of a work task that has not started, seconds.
WORK_RESEND_MAX_S: Final = 300.0

#: Names of the repairs, as counted in a pass's report and in the log.
RESTARTED: Final = "restarted"
REARMED: Final = "rearmed"
RESENT_WORK: Final = "resent_work"
RERUN: Final = "rerun"
FAILED: Final = "failed"
CANCELLED: Final = "cancelled"
#: Every repair a pass may report: the job repairs above and the split jobs' item repairs
#: (``tasks_app.items``), the ``repair`` labels of ``jobs_supervisor_repairs_total``.
REPAIRS: Final = (
    RESTARTED,
    REARMED,
    RESENT_WORK,
    RERUN,
    FAILED,
    CANCELLED,
    items.RESENT_ITEM,
    items.RERUN_ITEM,
    items.RESENT_MERGE,
)
for _repair_name in REPAIRS:  # every series exists from the start, at 0
    metrics.SUPERVISOR_REPAIRS.labels(_repair_name)


def _age_s(since: dt.datetime | None, now: dt.datetime) -> float:
    return float("inf") if since is None else (now - since).total_seconds()


def _poll_overdue(job: Job, now: dt.datetime) -> bool:
    """True when the chain's next poll is more than ``OVERDUE_GRACE_S`` past due: due at
    ``chain_at`` plus the countdown the kind gives (``next_poll_in_ms``)."""
    if job.chain_at is None:
        return True
    countdown_s = get_kind(job.kind).next_poll_in_ms(job, job.chain_at) / 1000
    return _age_s(job.chain_at, now) > countdown_s + OVERDUE_GRACE_S


def _work_resend_due(job: Job, now: dt.datetime) -> bool:
    """A sent work task with no heartbeat yet: re-send after ``JOB_HEARTBEAT_TIMEOUT_S``,
    doubling with every send up to ``WORK_RESEND_MAX_S``."""
    wait_s = min(WORK_RESEND_MAX_S, float(settings.JOB_HEARTBEAT_TIMEOUT_S) * 2 ** max(0, job.work_sends - 1))
    return bool(_age_s(job.work_dispatched_at, now) > wait_s)


def _candidates(now: dt.datetime) -> list[Job]:
    """Active jobs that may need a repair (a cheap superset; each repair checks again)."""
    overdue = now - dt.timedelta(seconds=OVERDUE_GRACE_S)
    silent = now - dt.timedelta(seconds=settings.JOB_HEARTBEAT_TIMEOUT_S)
    unconfirmed = now - dt.timedelta(seconds=CANCEL_CONFIRM_TIMEOUT_S)
    return list(
        Job.objects.filter(
            Q(state=JobState.PENDING, chain_at__lt=overdue)
            | Q(state__in=[JobState.RUNNING, JobState.CANCELLING], chain_at__lt=overdue)
            | Q(state=JobState.RUNNING, attempt__gt=0, heartbeat_at__lt=silent)
            | Q(state=JobState.RUNNING, attempt__gt=0, heartbeat_at__isnull=True, work_dispatched_at__lt=silent)
            | Q(state=JobState.CANCELLING, cancel_requested_at__lt=unconfirmed)
        ).only("id")
    )


def supervise(now: dt.datetime | None = None) -> Counter[str]:
    """One pass over the active jobs; returns how many repairs of each kind it made
    (``RESTARTED``, ``REARMED``, ``RESENT_WORK``, ``RERUN``, ``FAILED``, ``CANCELLED``, and a
    split job's item repairs: one of :data:`REPAIRS` per job repaired). Each repair is also
    counted, once committed, in ``jobs_supervisor_repairs_total{repair}``."""
    now = now or timezone.now()
    done: Counter[str] = Counter()
    for candidate in _candidates(now):
        try:
            repair = _repair(candidate.id, now)
        except Exception:
            logger.exception("supervisor: repair of job %s failed; the next pass tries again", candidate.id)
            continue
        if repair:
            done[repair] += 1
            metrics.SUPERVISOR_REPAIRS.labels(repair).inc()
    if done:
        logger.info("supervisor: %s", ", ".join(f"{n} {name}" for name, n in sorted(done.items())))
    return done


def _repair(job_id: uuid.UUID, now: dt.datetime) -> str | None:
    """Repair one job under its row lock; returns the repair made, or None."""
    with transaction.atomic():
        job = services.locked(job_id)
        if job is None or job.state in FINAL_STATES:
            return None
        kind = get_kind(job.kind)
        if job.state == JobState.PENDING:
            if _age_s(job.chain_at, now) <= OVERDUE_GRACE_S:
                return None
            job.chain_at = now
            job.save(update_fields=["chain_at"])
            services.send_after_commit(services.TASK_RUN_JOB, [str(job.id)], task_id=job.celery_task_id)
            logger.warning("supervisor: job %s still pending; run_job sent again", job.id)
            return RESTARTED
        if job.state == JobState.CANCELLING and _age_s(job.cancel_requested_at, now) > CANCEL_CONFIRM_TIMEOUT_S:
            kind.stop(job)
            services.finish(job, JobState.CANCELLED)
            logger.warning("supervisor: cancel of job %s not confirmed in time; ended cancelled", job.id)
            return CANCELLED
        if job.state == JobState.RUNNING and kind.work_task and job.attempt:
            # A split job's work is its items once they are made (tasks_app.items).
            split = isinstance(kind, SplitKind) and "items" in job.kind_state
            repair = items.items_repair(job, now) if split else _repair_work(job, now)
            if repair:
                return repair
        if _poll_overdue(job, now):
            job.chain_at = now
            services.schedule_poll(job)
            job.save(update_fields=["chain_at", "poll_due_at"])
            logger.warning("supervisor: job %s's poll chain stopped; poll %s scheduled again", job.id, job.poll_seq)
            return REARMED
        return None


def _repair_work(job: Job, now: dt.datetime) -> str | None:
    timeout_s = settings.JOB_HEARTBEAT_TIMEOUT_S
    if job.heartbeat_at is None:
        if not _work_resend_due(job, now):
            return None
        job.work_sends += 1
        job.work_dispatched_at = now
        job.save(update_fields=["work_sends", "work_dispatched_at"])
        services.send_work(job)
        logger.warning("supervisor: job %s's work (attempt %s) has not started; sent again", job.id, job.attempt)
        return RESENT_WORK
    silent_s = _age_s(job.heartbeat_at, now)
    if silent_s <= timeout_s:
        return None
    kind = get_kind(job.kind)
    if _age_s(job.work_started_at, now) > kind.time_limit_s:
        kind.stop(job)
        services.finish(job, JobState.FAILED, error=services.time_limit_message(kind.time_limit_s))
        return FAILED
    attempts.work_retry_or_fail(job, now, attempts.REASON_WORKER_LOST, silent_s)
    return FAILED if job.state == JobState.FAILED else RERUN


def housekeep(now: dt.datetime | None = None) -> Counter[str]:
    """Delete what nobody needs any more; returns counts: ``results`` (Celery results past
    ``result_expires``, through the result backend's own ``cleanup``), ``uploads`` (no job
    refers to them and they are older than ``UPLOAD_ORPHAN_MAX_AGE_S``), ``recorded``
    (recorded progress of jobs that are final or gone)."""
    now = now or timezone.now()
    done: Counter[str] = Counter()
    current_app.backend.cleanup()
    done["results"] = 1
    cutoff = now - dt.timedelta(seconds=settings.UPLOAD_ORPHAN_MAX_AGE_S)
    for upload in Upload.objects.filter(created_at__lt=cutoff):
        if not Job.objects.filter(params__upload_id=str(upload.id)).exists():
            upload.file.delete(save=False)
            upload.delete()
            done["uploads"] += 1
    recorded = recorded_job_ids()
    live = set(Job.objects.filter(pk__in=recorded).exclude(state__in=FINAL_STATES).values_list("pk", flat=True))
    attempts = dict(Job.objects.filter(pk__in=recorded).values_list("pk", "attempt"))
    for job_id in recorded - live:
        clear_recorded(job_id, max(1, attempts.get(job_id, 1)))
        done["recorded"] += 1
    logger.info("housekeeping: %s", ", ".join(f"{n} {name}" for name, n in sorted(done.items())))
    return done
