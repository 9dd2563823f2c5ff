"""Every change of a job's state, in one place.

Ordering guarantee: every change that publishes a frame takes the job's row lock and saves
with ``seq + 1``; the frame (the snapshot taken under the lock) and every task the change
sends leave only *after* the transaction committed (``transaction.on_commit``), so a
rolled-back change sends nothing and a work task never runs before its job row exists. Two
changes of one job commit in ``seq`` order (the lock); their frames may reach the channel
layer out of order, and consumers drop a frame whose ``seq`` they already passed, so a
socket never goes backwards. Once the final state committed no change can follow it
(each would take the lock and find the state final).

The poll chain (every change a poll makes) is ``tasks_app.polling``.

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
from typing import Any, Final

from celery import current_app
from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.utils import timezone

from realtime import messaging
from tasks_app.errors import IdempotencyConflict, NotCancellable, RateLimited
from tasks_app.kinds import REGISTRY, get_kind
from tasks_app.models import FINAL_STATES, LIMITED_STATES, Job, JobState, Upload
from tasks_app.progress import clear_recorded
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
