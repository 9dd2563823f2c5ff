"""The poll chain: every change a poll makes to a job (DESIGN.md "Celery rules").

``run_job`` schedules poll 0 (``services.job_run``); poll ``n`` first claims the job with a
compare-and-set ``poll_seq: n → n+1`` and schedules poll ``n+1`` in the same transaction. A
duplicate or stale poll finds ``poll_seq`` moved on and does nothing, so a chain never forks;
a poll that fails before commit leaves ``poll_seq`` at ``n`` and its redelivery runs it again.
Each claim stamps ``chain_at``: the supervisor re-arms a chain whose next poll is overdue
(``tasks_app.supervisor``). Jobs due together are polled in one batch by a tick
(:func:`job_poll_tick`, ``tasks_app.ticks``).

A poll reads the kind's progress, saves it with ``seq + 1`` when it changed and publishes the
snapshot after commit, ends the job when the kind says so, and enforces the time limit; the
ordering guarantee is ``tasks_app.services``'.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any, Final, TypeGuard

from django.conf import settings
from django.db import transaction
from django.db.models import Field
from django.utils import timezone

from tasks_app import metrics, services
from tasks_app.kinds import get_kind
from tasks_app.kinds.base import JobKind, Progress, Reading
from tasks_app.models import PROGRESS_MESSAGE_MAX_CHARS, Job, JobState
from tasks_app.rate import add_sample

logger = logging.getLogger(__name__)


def job_poll(*, job_id: uuid.UUID | str, poll_seq: int) -> None:
    """One poll of the chain (task ``poll_job``): observe the work, then read, save and send
    what changed, end the job when its work ended or a cancel was confirmed, else schedule
    poll ``poll_seq + 1``.

    The poll claims ``poll_seq`` under the job's row lock: a stale or duplicate poll
    (``poll_seq`` no longer the expected one), or a poll of a final job, does nothing. A kind
    with an ``observe`` hook (``JobKind.observes``: the ``remote`` kind's network call) is
    observed outside any transaction, between a first look and the services.locked poll, so the call
    never holds the lock; any other kind is polled in one transaction with one read. Sends
    nothing when nothing visible changed.
    """
    seen: Job | None = None
    with transaction.atomic():
        job = services.locked(job_id)
        if not _poll_due(job, poll_seq):
            return
        kind = get_kind(job.kind)
        if kind.observes:
            seen = job
        else:
            _save(job, _poll_locked(job, kind, poll_seq, seen_state=job.state, observation=None))
    if seen is None:
        return
    observation = kind.observe(seen, timezone.now())
    with transaction.atomic():
        job = services.locked(job_id)
        if _poll_due(job, poll_seq):
            _save(job, _poll_locked(job, kind, poll_seq, seen_state=seen.state, observation=observation))


def job_poll_tick(*, tick: dt.datetime) -> list[str]:
    """Poll every job whose next poll is due by ``tick`` (task ``poll_tick``,
    ``tasks_app.ticks``); returns the ids of the jobs polled (Flower shows them as the
    task's result).

    Jobs are taken in batches of ``PROGRESS_TICK_BATCH``, each batch in one transaction
    with one services.locked read of its rows, one read of the kinds' observations
    (``JobKind.prefetch``) and one ``executemany`` UPDATE per set of changed fields
    (:func:`_save_many`); each job is polled as ``job_poll`` polls it, fenced by the
    ``poll_seq`` the select saw, so a duplicate tick, or a tick racing a ``poll_job``, polls
    no job twice. Frames leave after each batch's commit, in one hand-over to the channel
    layer (``messaging.send_job_events``), and so do the next ticks. Once a batch committed,
    each job's poll lag (seconds from its ``poll_due_at`` to the batch's services.locked read, at least
    0) goes to ``jobs_poll_lag_seconds`` (``tasks_app.metrics.POLL_LAG``).
    """
    due = list(
        Job.objects.filter(state__in=POLLED_STATES, poll_due_at__lte=tick)
        .order_by("poll_due_at")
        .values_list("id", "poll_seq")
    )
    polled: list[str] = []
    size = int(settings.PROGRESS_TICK_BATCH)
    for start in range(0, len(due), size):
        expected = dict(due[start : start + size])
        with transaction.atomic(), services.publishing_together():
            jobs = [
                job
                for job in Job.objects.select_for_update().filter(pk__in=expected).order_by("pk")
                if _poll_due(job, expected[job.id]) and job.poll_due_at is not None and job.poll_due_at <= tick
            ]
            ran_at = timezone.now()
            lags_s = [max(0.0, (ran_at - at).total_seconds()) for job in jobs if (at := job.poll_due_at) is not None]
            by_kind: dict[str, list[Job]] = {}
            for job in jobs:
                by_kind.setdefault(job.kind, []).append(job)
            saves: list[tuple[Job, tuple[str, ...]]] = []
            for name, of_kind in by_kind.items():
                kind = get_kind(name)
                observations = kind.prefetch(of_kind)
                for job in of_kind:
                    seen = observations.get(job.id)
                    fields = _poll_locked(job, kind, job.poll_seq, seen_state=job.state, observation=seen)
                    saves.append((job, fields))
                    polled.append(str(job.id))
            _save_many(saves)
        for lag_s in lags_s:
            metrics.POLL_LAG.observe(lag_s)
    return polled


def _save(job: Job, fields: tuple[str, ...]) -> None:
    if fields:
        job.save(update_fields=fields)


def _save_many(saves: list[tuple[Job, tuple[str, ...]]]) -> None:
    """UPDATE each job's ``fields`` (``()``: nothing to save), one ``executemany`` per set of
    fields. The ORM's ``save(update_fields=...)`` built a query per job: half of a tick's CPU
    (py-spy, ``tests/bench_poll.py --tick 100``). Values go through each field's
    ``get_db_prep_save``, as ``save`` does; ``Job`` has no ``auto_now`` field or save signal."""
    by_fields: dict[tuple[str, ...], list[Job]] = {}
    for job, fields in saves:
        if fields:
            by_fields.setdefault(tuple(sorted(fields)), []).append(job)
    if not by_fields:
        return
    connection = transaction.get_connection()
    quote = connection.ops.quote_name
    meta = Job._meta
    with connection.cursor() as cursor:
        for names, jobs in by_fields.items():
            columns = [field for name in names if isinstance(field := meta.get_field(name), Field)]
            assignments = ", ".join(f"{quote(field.column)} = %s" for field in columns)
            sql = f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {quote(meta.pk.column)} = %s"
            rows = [
                [field.get_db_prep_save(getattr(job, field.attname), connection) for field in columns]
                + [meta.pk.get_db_prep_value(job.pk, connection)]
                for job in jobs
            ]
            cursor.executemany(sql, rows)


def _poll_due(job: Job | None, poll_seq: int) -> TypeGuard[Job]:
    """True when ``poll_seq`` is the job's expected poll and the job is running or cancelling."""
    if job is None or job.poll_seq != poll_seq or job.state not in POLLED_STATES:
        logger.debug("poll %s of job %s is stale or the job ended; chain stops", poll_seq, getattr(job, "id", "?"))
        return False
    return True


#: States whose chain polls.
POLLED_STATES: Final = (JobState.RUNNING, JobState.CANCELLING)
#: Fields every poll writes: the claim of its ``poll_seq``, when the chain last moved and
#: when the next poll is due.
_CLAIM_FIELDS: Final = ("poll_seq", "chain_at", "poll_due_at")


def _poll_locked(job: Job, kind: JobKind, poll_seq: int, *, seen_state: str, observation: Any) -> tuple[str, ...]:
    """The poll of a row-services.locked ``job`` whose ``poll_seq`` is due: claim it, then end, or
    send and schedule the next poll. ``seen_state`` is the state the observation saw.
    Returns the fields the caller saves in the same transaction (``()`` when the job ended:
    ``_finish`` saved it)."""
    now = timezone.now()
    job.poll_seq, job.chain_at = poll_seq + 1, now
    if job.state == JobState.CANCELLING:
        # job_cancel already asked the kind to stop its work; a kind that stops its work
        # from the poll (remote: DELETE) confirms here once it did.
        if seen_state == JobState.CANCELLING and kind.cancel_confirmed(job, observation):
            services.finish(job, JobState.CANCELLED)
            return ()
        services.schedule_poll(job, int(settings.PROGRESS_POLL_INTERVAL_MS))
        return _CLAIM_FIELDS
    over = _over_time_limit(job, now)
    if over is not None:
        kind.stop(job)
        job.error = services.time_limit_message(over)
        services.finish(job, JobState.FAILED)
        return ()
    reading = kind.read(job, now, observation)
    changed = reading.progress is not None and apply_progress(job, reading.progress)
    changed = _apply_kind_state(job, reading) or changed
    if reading.succeeded:
        job.result = reading.result
        services.finish(job, JobState.SUCCEEDED)
        return ()
    if reading.failed:
        job.error = reading.error[: services.ERROR_MAX_CHARS]
        services.finish(job, JobState.FAILED)
        return ()
    services.schedule_poll(job, kind.next_poll_in_ms(job, now))
    if changed:
        job.seq += 1
        services.publish(job)
        return (*_PROGRESS_FIELDS, "kind_state", "seq", *_CLAIM_FIELDS)
    if reading.kind_state is not None:
        return ("kind_state", *_CLAIM_FIELDS)
    return _CLAIM_FIELDS


#: Fields a progress change writes.
_PROGRESS_FIELDS: Final = ("progress_current", "progress_total", "progress_message", "progress_samples")
#: Seconds a work task gets past its kind's time limit (Celery's hard limit) before the
#: poll ends the job anyway; inside it, Celery's soft limit ends the work itself.
TIME_LIMIT_GRACE_S: Final = 5


def _over_time_limit(job: Job, now: dt.datetime) -> int | None:
    """The kind's ``time_limit_s`` when the job's current run exceeded it, else None.

    A kind with a work task counts from the start of its current attempt (Celery's soft
    limit ends the work first; this is the backstop, ``TIME_LIMIT_GRACE_S`` later), a kind
    driven by the poll chain from the job's start.
    """
    kind = get_kind(job.kind)
    limit_s = kind.time_limit_s
    if kind.work_task:
        since, grace = job.work_started_at, TIME_LIMIT_GRACE_S
    else:
        since, grace = job.started_at, 0
    if since is None or (now - since).total_seconds() <= limit_s + grace:
        return None
    return limit_s


def _apply_kind_state(job: Job, reading: Reading) -> bool:
    """Store the reading's kind state and retry notice on the job; True when the retry
    notice (which viewers see) changed."""
    if reading.kind_state is None and reading.retrying is None and "retrying" not in job.kind_state:
        return False
    state = dict(job.kind_state if reading.kind_state is None else reading.kind_state)
    before = job.kind_state.get("retrying")
    if reading.retrying is None:
        state.pop("retrying", None)
    else:
        state["retrying"] = reading.retrying
    job.kind_state = state
    return bool(state.get("retrying") != before)


def apply_progress(job: Job, progress: Progress) -> bool:
    new = (progress.current, progress.total, progress.message[:PROGRESS_MESSAGE_MAX_CHARS])
    if new == (job.progress_current, job.progress_total, job.progress_message):
        return False
    if new[0] != job.progress_current and job.started_at is not None:
        elapsed_s = (timezone.now() - job.started_at).total_seconds()
        job.progress_samples = add_sample(list(job.progress_samples or []), elapsed_s, new[0])
    job.progress_current, job.progress_total, job.progress_message = new
    return True
