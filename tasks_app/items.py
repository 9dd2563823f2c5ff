"""Every change of a split job's items (``tasks_app.kinds.split_kind``).

A split job's work runs in three kinds of Celery task, all on the kind's queue: the *split*
task (the job's work task, fenced by the job's ``attempt`` as any work task,
``tasks_app.attempts``) makes the items (:func:`items_create`) and sends one *item* task per
item, as one Celery ``group``; each item task claims its item's run (:func:`item_claim`),
beats while it runs (:func:`item_heartbeat`) and ends it (:func:`item_succeed`,
:func:`item_fail`, :func:`item_stopped`); the item that ends last sends the *merge* task
(the chord's callback), which claims it once (:func:`merge_claim`) and ends the job.

Each item has its own ``attempt``: a copy of an older run of the item (a redelivery after the
visibility timeout, a duplicate send) matches nothing and writes nothing. The merge is sent by
the transaction that ends the last item, under the job's row lock, and claimed once, so it runs
at most once whatever is redelivered. Celery's own chord cannot be the join: its counter counts
the group's task results (django_celery_results/backends/database.py ``on_chord_part_return``
decrements ``ChordCounter`` per result of a task of the group), and a run the supervisor sends
again is a task of no group.

Like ``tasks_app.services``, every change takes the job's row lock, and frames and tasks leave
after commit.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import uuid
from typing import Any, Final

from celery import current_app, group
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from tasks_app import services
from tasks_app.kinds import get_kind
from tasks_app.kinds.split_kind import SplitKind
from tasks_app.models import ITEM_FINAL_STATES, ItemState, Job, JobItem, JobState

logger = logging.getLogger(__name__)

#: Names of the supervisor's repairs of items (``tasks_app.supervisor``).
RESENT_ITEM: Final = "resent_item"
RERUN_ITEM: Final = "rerun_item"
RESENT_MERGE: Final = "resent_merge"
#: ``retrying`` reason and item error of an item whose task's heartbeat stopped.
REASON_ITEM_LOST: Final = "worker lost"
#: Longest wait between two re-sends of an item task that has not started, seconds.
ITEM_RESEND_MAX_S: Final = 300.0


def _split_kind(job: Job) -> SplitKind:
    kind = get_kind(job.kind)
    assert isinstance(kind, SplitKind), f"{job.kind} is not a split kind"
    return kind


def _locked_item(job: Job, index: int) -> JobItem | None:
    return JobItem.objects.select_for_update().filter(job=job, index=index).first()


def items_create(*, job_id: str, attempt: int, items: list[tuple[Any, int]]) -> int | None:
    """Make the items of the job's ``attempt`` (``[(item, size), ...]`` in order, each item
    JSON-serialisable, sizes ≥ 1) and send their tasks after commit, as one group; with no
    item, send the merge at once. Returns how many items were made, or None when this split
    does not count (the job ended, a newer attempt owns it, or its items were made already).
    """
    with transaction.atomic():
        job = services.locked(job_id)
        if job is None or job.is_final or job.attempt != attempt:
            return None
        if "items" in job.kind_state:
            logger.info("job %s: items already made; this split does nothing", job_id)
            return None
        kind = _split_kind(job)
        now = timezone.now()
        rows = [
            JobItem(job=job, index=index, item=item, size=size, task_id=str(uuid.uuid4()), dispatched_at=now)
            for index, (item, size) in enumerate(items)
        ]
        JobItem.objects.bulk_create(rows)
        job.kind_state = {**job.kind_state, "items": len(rows)}
        job.progress_current = 0
        job.progress_total = sum(row.size for row in rows) or None
        job.progress_message = f"0 of {len(rows)} parts done"
        job.seq += 1
        if rows:
            signatures = [kind.item_signature(job, row) for row in rows]
            transaction.on_commit(lambda: _send_group(job.id, signatures))
        else:
            _send_merge(job, kind, now)
        job.save()
        services.publish(job)
        logger.info("job %s: split into %s items", job.id, len(rows))
        return len(rows)


def _send_group(job_id: uuid.UUID, signatures: list[Any]) -> None:
    try:
        group(signatures).apply_async()
    except Exception as exc:
        logger.warning("job %s: item tasks not sent (%s); the supervisor sends them again", job_id, exc)


def item_claim(*, job_id: str, attempt: int, index: int, item_attempt: int) -> tuple[Job, JobItem] | None:
    """Claim run ``item_attempt`` of item ``index`` as it starts in a worker; returns the job
    and the item when this copy is the one to run it, else None (do nothing): the job ended or
    is being cancelled, its attempt moved on, the item's run moved on or ended, or another copy
    of the run beats."""
    now = timezone.now()
    with transaction.atomic():
        job = services.locked(job_id)
        if job is None or job.state != JobState.RUNNING or job.attempt != attempt:
            return None
        item = _locked_item(job, index)
        if item is None or item.attempt != item_attempt or item.state in ITEM_FINAL_STATES:
            return None
        if item.state == ItemState.RUNNING and _age_s(item.heartbeat_at, now) < settings.JOB_HEARTBEAT_TIMEOUT_S:
            logger.info("job %s: item %s run %s already runs elsewhere", job_id, index, item_attempt)
            return None
        item.state = ItemState.RUNNING
        item.heartbeat_at = now
        item.save(update_fields=["state", "heartbeat_at"])
        return job, item


def item_heartbeat(item_pk: int, item_attempt: int) -> bool:
    """Stamp the heartbeat of run ``item_attempt`` of an item (one UPDATE); False when that run
    no longer counts (it ended, a newer run owns the item, or the job ended)."""
    return bool(
        JobItem.objects.filter(
            pk=item_pk,
            attempt=item_attempt,
            state=ItemState.RUNNING,
            job__state__in=[JobState.RUNNING, JobState.CANCELLING],
        ).update(heartbeat_at=timezone.now())
    )


def _current_run(job_id: str, attempt: int, index: int, item_attempt: int) -> tuple[Job, JobItem] | None:
    """The locked job and item when run ``item_attempt`` of item ``index`` is still the one
    that counts (inside a transaction)."""
    job = services.locked(job_id)
    if job is None or job.is_final or job.attempt != attempt:
        return None
    item = _locked_item(job, index)
    if item is None or item.attempt != item_attempt or item.state != ItemState.RUNNING:
        logger.info("job %s: outcome of item %s run %s ignored (not current)", job_id, index, item_attempt)
        return None
    return job, item


def item_succeed(*, job_id: str, attempt: int, index: int, item_attempt: int, result: Any) -> bool:
    """Record item ``index``'s ``result`` (JSON-serialisable); when it was the last item to
    end, send the merge. Returns True when the outcome counted."""
    with transaction.atomic():
        current = _current_run(job_id, attempt, index, item_attempt)
        if current is None:
            return False
        job, item = current
        item.state = ItemState.SUCCEEDED
        item.result = result
        item.error = ""
        item.finished_at = timezone.now()
        item.save(update_fields=["state", "result", "error", "finished_at"])
        _after_item(job, item.finished_at)
        return True


def item_fail(*, job_id: str, attempt: int, index: int, item_attempt: int, error: str, retry: bool) -> bool:
    """Item ``index``'s run failed with ``error`` (short human text). With ``retry`` and runs
    left (the kind's ``item_attempts``), the item runs again as a new run; else it ends
    ``failed``, and the kind's ``on_item_failure`` decides: ``fail`` ends the job ``failed``
    now (the error names the item) and stops the other items, ``finish`` counts it and goes
    on. Returns True when the outcome counted."""
    with transaction.atomic():
        current = _current_run(job_id, attempt, index, item_attempt)
        if current is None:
            return False
        job, item = current
        _fail_or_rerun(job, item, error, retry, timezone.now())
        return True


def _fail_or_rerun(job: Job, item: JobItem, error: str, retry: bool, now: dt.datetime) -> str:
    """Run the locked ``item`` again or end it failed (:func:`item_fail`); returns which
    (``RERUN_ITEM`` or ``ItemState.FAILED``)."""
    kind = _split_kind(job)
    item.error = error[: services.ERROR_MAX_CHARS]
    if retry and item.attempt < kind.item_attempts:
        old_task_id = item.task_id
        item.attempt += 1
        item.state = ItemState.QUEUED
        item.task_id = str(uuid.uuid4())
        item.sends = 1
        item.dispatched_at = now
        item.heartbeat_at = None
        item.save()
        signature = kind.item_signature(job, item)
        transaction.on_commit(lambda: _revoke_and_send(old_task_id, signature))
        logger.warning(
            "job %s: item %s failed (%s); run %s of %s sent",
            job.id,
            item.index,
            error,
            item.attempt,
            kind.item_attempts,
        )
        return RERUN_ITEM
    item.state = ItemState.FAILED
    item.finished_at = now
    item.save()
    logger.warning("job %s: item %s failed for good after %s runs: %s", job.id, item.index, item.attempt, error)
    if kind.item_failure_policy(job) == "fail":
        count = int(job.kind_state.get("items", 0))
        services.finish(job, JobState.FAILED, error=f"part {item.index + 1} of {count} failed: {error}")
    else:
        _after_item(job, now)
    return str(ItemState.FAILED)


def _revoke_and_send(old_task_id: str, signature: Any) -> None:
    try:
        current_app.control.revoke(old_task_id, terminate=True, signal="SIGKILL")
        signature.apply_async()
    except Exception as exc:
        logger.warning("item task %s not sent (%s); the supervisor sends it again", signature.id, exc)


def item_stopped(*, job_id: str, attempt: int, index: int, item_attempt: int) -> bool:
    """Item ``index``'s run stopped after a cancel (``JobCancelled``): it ends ``cancelled``,
    and a job being cancelled whose items all stopped ends ``cancelled``. Returns True when
    this call ended the job."""
    with transaction.atomic():
        job = services.locked(job_id)
        if job is None or job.is_final or job.attempt != attempt:
            return False
        item = _locked_item(job, index)
        if item is None or item.attempt != item_attempt or item.state in ITEM_FINAL_STATES:
            return False
        item.state = ItemState.CANCELLED
        item.finished_at = timezone.now()
        item.save(update_fields=["state", "finished_at"])
        if job.state == JobState.CANCELLING and not job.items.filter(state=ItemState.RUNNING).exists():
            services.finish(job, JobState.CANCELLED)
            return True
        return False


def _after_item(job: Job, now: dt.datetime) -> None:
    """After an item of the locked ``job`` ended: when none is left to run, send the merge."""
    if job.items.exclude(state__in=ITEM_FINAL_STATES).exists():
        return
    _send_merge(job, _split_kind(job), now)
    job.save(update_fields=["kind_state"])


def _send_merge(job: Job, kind: SplitKind, now: dt.datetime) -> None:
    """Mark the merge sent on the locked ``job`` (``kind_state["merge"]``, saved by the caller)
    and send it after commit; a merge already sent is not sent again."""
    if "merge" in job.kind_state:
        return
    task_id = str(uuid.uuid4())
    job.kind_state = {**job.kind_state, "merge": {"task_id": task_id, "sent_at": now.isoformat()}}
    services.send_after_commit(kind.merge_task, [str(job.id), job.attempt], task_id=task_id, queue=kind.queue)


def merge_claim(*, job_id: str, attempt: int, task_id: str) -> tuple[Job, list[JobItem]] | None:
    """Claim the merge as it starts (task ``task_id``); returns the job and its items in
    order when this copy is the merge to run, else None: the job ended, its attempt moved on,
    the task is not the merge the job sent, or the merge was claimed already (it runs once)."""
    with transaction.atomic():
        job = services.locked(job_id)
        if job is None or job.state != JobState.RUNNING or job.attempt != attempt:
            return None
        merge = job.kind_state.get("merge") or {}
        if merge.get("task_id") != task_id or merge.get("claimed_at"):
            logger.info("job %s: merge task %s is not the one to run", job_id, task_id)
            return None
        job.kind_state = {**job.kind_state, "merge": {**merge, "claimed_at": timezone.now().isoformat()}}
        job.save(update_fields=["kind_state"])
        return job, list(job.items.order_by("index"))


def _age_s(since: dt.datetime | None, now: dt.datetime) -> float:
    return float("inf") if since is None else (now - since).total_seconds()


def items_repair(job: Job, now: dt.datetime) -> str | None:
    """The supervisor's repairs of a locked, running split job whose items were made; returns
    the last repair made (``RESENT_ITEM``, ``RERUN_ITEM``, ``RESENT_MERGE``, ``"failed"``) or
    None.

    - an item sent but not started within ``JOB_HEARTBEAT_TIMEOUT_S`` (doubling with each
      send, up to ``ITEM_RESEND_MAX_S``): the same run's task is sent again (a duplicate finds
      the run claimed);
    - an item whose heartbeat stopped: a new run, up to the kind's ``item_attempts``, then
      the item fails (``worker lost``) and ``on_item_failure`` decides;
    - a merge sent but never claimed: sent again under the same task id; a merge claimed but
      not done within the kind's ``time_limit_s`` fails the job (a merge runs once).
    """
    kind = _split_kind(job)
    timeout_s = float(settings.JOB_HEARTBEAT_TIMEOUT_S)
    done: str | None = None
    merge = job.kind_state.get("merge")
    if merge:
        sent_at = dt.datetime.fromisoformat(merge["sent_at"])
        if merge.get("claimed_at"):
            if _age_s(dt.datetime.fromisoformat(merge["claimed_at"]), now) > kind.time_limit_s:
                services.finish(job, JobState.FAILED, error=f"the merge did not finish in {kind.time_limit_s} s")
                return "failed"
            return None
        if _age_s(sent_at, now) > timeout_s:
            job.kind_state = {**job.kind_state, "merge": {**merge, "sent_at": now.isoformat()}}
            job.save(update_fields=["kind_state"])
            services.send_after_commit(
                kind.merge_task, [str(job.id), job.attempt], task_id=merge["task_id"], queue=kind.queue
            )
            logger.warning("supervisor: job %s's merge was not claimed; sent again", job.id)
            return RESENT_MERGE
        return None
    for item in JobItem.objects.select_for_update().filter(job=job).exclude(state__in=ITEM_FINAL_STATES):
        if item.state == ItemState.QUEUED:
            wait_s = min(ITEM_RESEND_MAX_S, timeout_s * 2 ** max(0, item.sends - 1))
            if _age_s(item.dispatched_at, now) <= wait_s:
                continue
            item.sends += 1
            item.dispatched_at = now
            item.save(update_fields=["sends", "dispatched_at"])
            signature = kind.item_signature(job, item)
            transaction.on_commit(functools.partial(_send_one, signature))
            logger.warning("supervisor: job %s item %s has not started; sent again", job.id, item.index)
            done = RESENT_ITEM
        elif _age_s(item.heartbeat_at, now) > timeout_s:
            silent_s = _age_s(item.heartbeat_at, now)
            error = (
                f"{REASON_ITEM_LOST}: no heartbeat for {silent_s:.0f} s (run {item.attempt} of {kind.item_attempts})"
            )
            done = _fail_or_rerun(job, item, error, True, now)
            if job.is_final:
                return "failed"
    return done


def _send_one(signature: Any) -> None:
    try:
        signature.apply_async()
    except Exception as exc:
        logger.warning("item task %s not sent (%s); the supervisor sends it again", signature.id, exc)
