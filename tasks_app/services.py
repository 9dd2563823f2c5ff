"""Every change of a job's state, in one place.

Ordering guarantee: every change that publishes a frame takes the job's row lock and saves
with ``seq + 1``; the frame (the snapshot taken under the lock) and every task the change
sends leave only *after* the transaction committed (``transaction.on_commit``), so a
rolled-back change sends nothing and a work task never runs before its job row exists. Two
changes of one job commit in ``seq`` order (the lock); their frames may reach the channel
layer out of order, and consumers drop a frame whose ``seq`` they already passed, so a
socket never goes backwards. Once the final state committed no change can follow it
(each would take the lock and find the state final).

The poll chain (DESIGN.md "Celery rules"): ``run_job`` schedules poll 0; poll ``n`` first
claims the job with a compare-and-set ``poll_seq: n → n+1`` and schedules poll ``n+1`` in
the same transaction. A duplicate or stale poll finds ``poll_seq`` moved on and does
nothing, so a chain never forks; a poll that fails before commit leaves ``poll_seq`` at
``n`` and its redelivery runs it again. Each claim stamps ``chain_at``: the supervisor
re-arms a chain whose next poll is overdue (``tasks_app.supervisor``).

The changes a kind's work task makes (its attempt's claim, heartbeat and outcome) are in
``tasks_app.attempts``.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import logging
import uuid
from collections.abc import Iterator
from typing import Any, Final, TypeGuard

from celery import current_app
from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.db.models import Field
from django.utils import timezone

from realtime import messaging
from tasks_app import metrics
from tasks_app.errors import IdempotencyConflict, NotCancellable, RateLimited
from tasks_app.kinds import REGISTRY, get_kind
from tasks_app.kinds.base import JobKind, Progress, Reading
from tasks_app.models import FINAL_STATES, LIMITED_STATES, PROGRESS_MESSAGE_MAX_CHARS, Job, JobState, Upload
from tasks_app.progress import clear_recorded
from tasks_app.rate import add_sample
from tasks_app.selectors import job_get, job_snapshot
from tasks_app.ticks import arm

logger = logging.getLogger(__name__)

#: Celery task names (the tasks live in ``tasks_app.tasks``; routes in ``celeryconfig``).
TASK_RUN_JOB: Final = "tasks_app.run_job"
TASK_POLL_JOB: Final = "tasks_app.poll_job"

#: Longest error text kept on a job, characters.
ERROR_MAX_CHARS: Final = 2000


#: Snapshots gathered by :func:`publishing_together` (None: each publish sends on its own).
_together: contextvars.ContextVar[list[dict[str, Any]] | None] = contextvars.ContextVar("together", default=None)


def publish(job: Job) -> None:
    """Send the job's snapshot, as it is now, once the current transaction commits."""
    snapshot = job_snapshot(job)
    gathered = _together.get()
    if gathered is not None:
        gathered.append(snapshot)
        return
    transaction.on_commit(lambda: messaging.send_job_event(snapshot))


@contextlib.contextmanager
def publishing_together() -> Iterator[None]:
    """Inside a transaction: the snapshots :func:`publish` takes meanwhile leave together, in
    the order taken, once the transaction commits (``messaging.send_job_events``: one hand-over
    to the channel layer's loop for a tick's batch instead of one per frame)."""
    gathered: list[dict[str, Any]] = []
    token = _together.set(gathered)
    try:
        yield
    finally:
        _together.reset(token)
        if gathered:
            transaction.on_commit(lambda: messaging.send_job_events(gathered))


def send_after_commit(name: str, args: list[Any], **options: Any) -> None:
    """Send Celery task ``name`` with ``args`` once the current transaction commits.

    A send that fails (the broker is away) is logged, not raised: the committed row says
    what should have been sent, and the supervisor sends it again.
    """

    def send() -> None:
        try:
            current_app.send_task(name, args=args, **options)
        except Exception as exc:
            logger.warning("could not send %s%s (%s); the supervisor sends it again", name, args, exc)

    transaction.on_commit(send)


def time_limit_message(limit_s: int) -> str:
    """The error of a job that ran past its kind's ``time_limit_s`` seconds."""
    return f"time limit exceeded ({limit_s} s)"


def locked(job_id: uuid.UUID | str) -> Job | None:
    """The job's row, locked until the current transaction ends (None when it is gone)."""
    return Job.objects.select_for_update().filter(pk=job_id).first()


def job_start(
    *,
    owner: User,
    kind: str,
    params: dict[str, Any],
    idempotency_key: str | None = None,
) -> Job:
    """Validate, create a ``pending`` job and dispatch ``run_job`` when the row is committed.

    ``params`` is the client's object, checked against the kind's schema. With an
    ``idempotency_key`` already used by ``owner`` for the same kind and parameters, the
    existing job is returned and nothing new starts.

    Raises ``UnknownKind``, ``InvalidParams`` (``fields`` name the bad parameters),
    ``IdempotencyConflict`` (the key names a job of another kind or parameters) or
    ``RateLimited`` (more than ``JOBS_MAX_ACTIVE_PER_USER`` jobs pending or running; a job
    being cancelled no longer counts).
    """
    job_kind = get_kind(kind)
    cleaned = job_kind.validate(params, owner=owner)
    if idempotency_key is not None:
        existing = Job.objects.filter(owner=owner, idempotency_key=idempotency_key).first()
        if existing is not None:
            return _same_job_or_error(existing, kind, cleaned)
    run_task_id = str(uuid.uuid4())
    try:
        with transaction.atomic():
            # Count and create as one step per user, whichever web process (or host) runs it:
            # the owner's row lock makes a second start wait for the first one's commit, where
            # both would count one below the limit and both create (tests/multihost). SQLite's
            # IMMEDIATE transactions (settings) serialize every write anyway.
            User.objects.select_for_update().only("pk").get(pk=owner.pk)
            active = Job.objects.filter(owner=owner, state__in=LIMITED_STATES).count()
            if active >= settings.JOBS_MAX_ACTIVE_PER_USER:
                raise RateLimited(
                    f"{active} jobs are still active (limit {settings.JOBS_MAX_ACTIVE_PER_USER}); "
                    "wait for one to end or cancel one"
                )
            job = Job.objects.create(
                owner=owner,
                kind=kind,
                params=cleaned,
                progress_total=job_kind.initial_total(cleaned),
                idempotency_key=idempotency_key,
                celery_task_id=run_task_id,
                chain_at=timezone.now(),
            )
            send_after_commit(TASK_RUN_JOB, [str(job.id)], task_id=run_task_id)
    except IntegrityError:
        # A concurrent job.start with the same idempotency key won the race.
        existing = Job.objects.get(owner=owner, idempotency_key=idempotency_key)
        return _same_job_or_error(existing, kind, cleaned)
    logger.info("job %s (%s) created for user %s", job.id, kind, owner.pk)
    return job


def _same_job_or_error(existing: Job, kind: str, cleaned: dict[str, Any]) -> Job:
    if existing.kind != kind or existing.params != cleaned:
        raise IdempotencyConflict(existing.idempotency_key or "")
    return existing


def job_run(*, job_id: uuid.UUID | str) -> None:
    """Start a pending job's work, mark it ``running`` and schedule poll 0 (task ``run_job``).

    Idempotent: a job that is no longer pending (redelivery, cancelled meanwhile) is left
    alone. A kind with a work task gets attempt 1 sent to its queue after the commit.
    """
    with transaction.atomic():
        job = locked(job_id)
        if job is None:
            logger.warning("run_job: job %s does not exist; nothing to run", job_id)
            return
        if job.state != JobState.PENDING:
            logger.info("run_job: job %s is %s, not pending; nothing to do", job_id, job.state)
            return
        kind = get_kind(job.kind)
        now = timezone.now()
        job.state = JobState.RUNNING
        job.started_at = now
        job.chain_at = now
        job.progress_message = "started"
        job.progress_samples = [[0.0, job.progress_current]]
        job.seq += 1
        job.poll_seq = 0
        if kind.work_task:
            new_attempt(job, now)
        schedule_poll(job, kind.next_poll_in_ms(job, now))
        job.save()
        publish(job)


def new_attempt(job: Job, now: dt.datetime) -> None:
    """Give the job's work a new attempt (number, task id) and send its work task after commit."""
    kind = get_kind(job.kind)
    assert kind.work_task
    job.attempt += 1
    job.work_task_id = str(uuid.uuid4())
    job.work_sends = 1
    job.work_dispatched_at = now
    job.work_started_at = None
    job.heartbeat_at = None
    send_work(job)


def send_work(job: Job) -> None:
    """Send the current attempt's work task (its kind's queue) after commit: ``(job_id, attempt)``."""
    kind = get_kind(job.kind)
    assert kind.work_task
    send_after_commit(kind.work_task, [str(job.id), job.attempt], task_id=job.work_task_id, queue=kind.queue)


def schedule_poll(job: Job, countdown_ms: int = 0) -> None:
    """Schedule the next poll of ``job``'s chain (poll ``job.poll_seq``) ``countdown_ms``
    milliseconds from now; the caller saves ``poll_due_at`` in the same transaction.

    A kind without an ``observe`` hook is polled by the ticks (``tasks_app.ticks``): the due
    time goes on the row and, once the transaction commits, the tick that serves it is armed.
    A kind that observes (a network call per poll) gets a ``poll_job`` task of its own, sent
    after commit, so one slow service never holds up a tick. Polls store no result:
    ``ignore_result`` goes in the message, because ``send_task`` puts ``ignore_result=False``
    in every message it sends (celery/app/base.py:870, app/amqp.py:381) and the worker obeys
    the message over the task's own ``ignore_result=True`` (celery/app/trace.py:157-176).
    """
    if get_kind(job.kind).observes:
        job.poll_due_at = None
        send_after_commit(TASK_POLL_JOB, [str(job.id), job.poll_seq], countdown=countdown_ms / 1000, ignore_result=True)
        return
    due = timezone.now() + dt.timedelta(milliseconds=countdown_ms)
    job.poll_due_at = due
    transaction.on_commit(lambda: arm(due))


def job_poll(*, job_id: uuid.UUID | str, poll_seq: int) -> None:
    """One poll of the chain (task ``poll_job``): observe the work, then read, save and send
    what changed, end the job when its work ended or a cancel was confirmed, else schedule
    poll ``poll_seq + 1``.

    The poll claims ``poll_seq`` under the job's row lock: a stale or duplicate poll
    (``poll_seq`` no longer the expected one), or a poll of a final job, does nothing. A kind
    with an ``observe`` hook (``JobKind.observes``: the ``remote`` kind's network call) is
    observed outside any transaction, between a first look and the locked poll, so the call
    never holds the lock; any other kind is polled in one transaction with one read. Sends
    nothing when nothing visible changed.
    """
    seen: Job | None = None
    with transaction.atomic():
        job = locked(job_id)
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
        job = locked(job_id)
        if _poll_due(job, poll_seq):
            _save(job, _poll_locked(job, kind, poll_seq, seen_state=seen.state, observation=observation))


def job_poll_tick(*, tick: dt.datetime) -> list[str]:
    """Poll every job whose next poll is due by ``tick`` (task ``poll_tick``,
    ``tasks_app.ticks``); returns the ids of the jobs polled (Flower shows them as the
    task's result).

    Jobs are taken in batches of ``PROGRESS_TICK_BATCH``, each batch in one transaction
    with one locked read of its rows, one read of the kinds' observations
    (``JobKind.prefetch``) and one ``executemany`` UPDATE per set of changed fields
    (:func:`_save_many`); each job is polled as ``job_poll`` polls it, fenced by the
    ``poll_seq`` the select saw, so a duplicate tick, or a tick racing a ``poll_job``, polls
    no job twice. Frames leave after each batch's commit, in one hand-over to the channel
    layer (``messaging.send_job_events``), and so do the next ticks. Once a batch committed,
    each job's poll lag (seconds from its ``poll_due_at`` to the batch's locked read, at least
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
        with transaction.atomic(), publishing_together():
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
    """The poll of a row-locked ``job`` whose ``poll_seq`` is due: claim it, then end, or
    send and schedule the next poll. ``seen_state`` is the state the observation saw.
    Returns the fields the caller saves in the same transaction (``()`` when the job ended:
    ``_finish`` saved it)."""
    now = timezone.now()
    job.poll_seq, job.chain_at = poll_seq + 1, now
    if job.state == JobState.CANCELLING:
        # job_cancel already asked the kind to stop its work; a kind that stops its work
        # from the poll (remote: DELETE) confirms here once it did.
        if seen_state == JobState.CANCELLING and kind.cancel_confirmed(job, observation):
            _finish(job, JobState.CANCELLED)
            return ()
        schedule_poll(job, int(settings.PROGRESS_POLL_INTERVAL_MS))
        return _CLAIM_FIELDS
    over = _over_time_limit(job, now)
    if over is not None:
        kind.stop(job)
        job.error = time_limit_message(over)
        _finish(job, JobState.FAILED)
        return ()
    reading = kind.read(job, now, observation)
    changed = reading.progress is not None and apply_progress(job, reading.progress)
    changed = _apply_kind_state(job, reading) or changed
    if reading.succeeded:
        job.result = reading.result
        _finish(job, JobState.SUCCEEDED)
        return ()
    if reading.failed:
        job.error = reading.error[:ERROR_MAX_CHARS]
        _finish(job, JobState.FAILED)
        return ()
    schedule_poll(job, kind.next_poll_in_ms(job, now))
    if changed:
        job.seq += 1
        publish(job)
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


def _finish(job: Job, state: str) -> None:
    """Save the final ``state`` with ``seq + 1`` and send the final frame (caller holds the lock)."""
    assert state in FINAL_STATES
    job.state = state
    job.finished_at = timezone.now()
    if state == JobState.SUCCEEDED and job.progress_total is not None:
        job.progress_current = job.progress_total
    if state == JobState.CANCELLED:
        job.progress_message = "cancelled"
    job.kind_state = {k: v for k, v in job.kind_state.items() if k != "retrying"}
    job.poll_due_at = None
    job.seq += 1
    job.save()
    kind = REGISTRY.get(job.kind)  # a job of a kind no longer installed still ends
    if kind is not None:
        kind.finished(job)
    job_id, attempts = job.id, job.attempt
    transaction.on_commit(lambda: clear_recorded(job_id, attempts))
    logger.info("job %s ended %s at seq %s", job.id, state, job.seq)
    publish(job)


def finish(job: Job, state: str, *, error: str = "") -> None:
    """End a row-locked job in the final ``state`` (with ``error`` for ``failed``): save,
    then send the final frame after commit. For the supervisor; the caller holds the lock
    (``locked``) inside a transaction and has checked the job is not final."""
    if error:
        job.error = error[:ERROR_MAX_CHARS]
    _finish(job, state)


def job_cancel(*, owner: User, job_id: uuid.UUID | str) -> Job:
    """Ask for the owner's job to be cancelled; returns the job as it now is.

    ``pending`` → ``cancelled`` at once (nothing was started); ``running`` → ``cancelling``
    (after commit the kind is asked to stop its work; the work stopping, or the next poll,
    ends the job ``cancelled``);
    ``cancelling`` → unchanged. Raises ``JobNotFound`` (unknown or another user's job) or
    ``NotCancellable`` (already succeeded, failed or cancelled).
    """
    with transaction.atomic():
        job = job_get(owner=owner, job_id=job_id, for_update=True)
        if job.is_final:
            raise NotCancellable(f"job {job.id} already {job.state}; it cannot be cancelled")
        if job.state == JobState.PENDING:
            _finish(job, JobState.CANCELLED)
        elif job.state == JobState.RUNNING:
            job.state = JobState.CANCELLING
            job.progress_message = "cancelling"
            job.cancel_requested_at = timezone.now()
            job.seq += 1
            job.save(update_fields=["state", "progress_message", "cancel_requested_at", "seq"])
            # The kind is asked to stop the work once ``cancelling`` is committed, so the
            # work that stops on it finds the state it must end in.
            transaction.on_commit(lambda: get_kind(job.kind).cancel(job))
            publish(job)
        logger.info("job %s cancel asked by user %s; now %s", job.id, owner.pk, job.state)
        return job


def upload_create(*, owner: User, file: UploadedFile[Any]) -> Upload:
    """Store an uploaded file for ``owner`` and return its ``Upload`` row.

    The caller has checked the size against ``UPLOAD_MAX_BYTES``.
    """
    name = (file.name or "upload.csv")[:255]
    upload = Upload(owner=owner, name=name, size=file.size or 0)
    upload.file.save(name, file, save=False)
    upload.save()
    logger.info("upload %s (%s bytes) stored for user %s", upload.id, upload.size, owner.pk)
    return upload
