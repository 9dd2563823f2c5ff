"""Job kinds whose work is split into items run in parallel: :func:`split_job_kind` (public API).

::

    class Params(StrictParams):
        limit: int = Field(ge=2, le=10_000_000)

    def ranges(params: Params) -> list[list[int]]:        # split: the items, JSON values
        step = params.limit // 8 + 1
        return [[start, min(start + step, params.limit)] for start in range(2, params.limit, step)]

    def add_up(params: Params, results: list[int]) -> dict[str, int]:   # merge: the callback
        return {"limit": params.limit, "primes": sum(results)}

    @split_job_kind("primes_split", params=Params, split=ranges, merge=add_up,
                    size=lambda item: item[1] - item[0])
    def count_range(params: Params, item: list[int], recorder: ProgressRecorder) -> int:
        ...                                               # one item, its own recorder
        return found

One job, three kinds of Celery task, all on the kind's ``queue`` (so every worker of that queue
takes a share, on every host): the split task ``tasks_app.kind.<name>`` (the job's work task:
it calls ``split`` and makes the items), one item task ``tasks_app.kind.<name>.item`` per item,
sent as one Celery ``group`` (arguments ``(job_id, attempt, index, item_attempt)``, so Flower
shows the job id of each), and the merge task ``tasks_app.kind.<name>.merge``, sent once the
last item ended, which calls ``merge`` with the items' results in order and ends the job
``succeeded`` with what it returns. The join is ours, not Celery's chord counter
(``tasks_app.items`` says why).

One job, one bar: the job's progress total is the sum of the items' sizes (``size(item)``,
default :data:`DEFAULT_ITEM_SIZE`); an item that ended counts whole, a running item counts the
share its recorder reported; the message says "37 of 120 parts done, 2 running".

Failures: an item that raises is run again, up to ``item_attempts`` runs in all
(:class:`~tasks_app.kinds.task_kind.JobFailed` is not retried: it says the item cannot
succeed). Then ``on_item_failure`` decides: ``"fail"`` (default) ends the job ``failed`` at
once, its error naming the part, and stops the other items; ``"finish"`` lets the others
finish, calls ``merge`` with the results of the items that succeeded, and adds
``failed_items`` (``{"count": n, "samples": [{"index", "item", "error"}, ...]}``, at most
:data:`MAX_FAILED_SAMPLES`) to a dict result.

Cancel reaches every item: queued item tasks are revoked, running ones stop at their
recorder's next write (or are terminated after ``CANCEL_TERMINATE_AFTER_S``). Recovery: the
supervisor sends an item task again when it never started and runs an item again when its
heartbeat stopped (a copy of an older run writes nothing); a merge runs at most once.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Final, Literal, TypeVar

from celery import Task, current_app, shared_task, signature
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from pydantic import BaseModel

from tasks_app.kinds.base import DEFAULT_MAX_ATTEMPTS, DEFAULT_TIME_LIMIT_S, Reading
from tasks_app.kinds.port import work_adapter
from tasks_app.kinds.registry import register
from tasks_app.kinds.task_kind import (
    CANCEL_TERMINATE_AFTER_S,
    HARD_LIMIT_GRACE_S,
    TASK_NAME_PREFIX,
    TaskKind,
    WorkFailed,
)
from tasks_app.models import ITEM_FINAL_STATES, ItemState, Job, JobItem
from tasks_app.progress import (
    DEFAULT_MIN_INTERVAL_MS,
    Progress,
    ProgressRecorder,
    clear_recorded_parts,
    read_recorded_parts,
    request_cancel,
)

logger = logging.getLogger(__name__)

P = TypeVar("P", bound=BaseModel)
ItemFunction = Callable[[P, Any, ProgressRecorder], Any]

#: Progress units of an item when the kind gives no ``size``: a hundredth of a part each.
DEFAULT_ITEM_SIZE: Final = 100
#: Default runs of one item (the first and two more after a failure).
DEFAULT_ITEM_ATTEMPTS: Final = 3
#: At most this many failed items are described in ``failed_items["samples"]``.
MAX_FAILED_SAMPLES: Final = 10
#: The policies of ``on_item_failure``.
ON_ITEM_FAILURE: Final = ("fail", "finish")
#: Suffixes of the item and merge task names (after ``tasks_app.kind.<name>``).
ITEM_TASK_SUFFIX: Final = ".item"
MERGE_TASK_SUFFIX: Final = ".merge"


class ItemFailed(Exception):
    """What an item task raises after its run failed (the error as message), so Celery, Flower
    and the admin's task results show the run as FAILURE. An expected error (``throws``)."""


def _part(index: int, item_attempt: int) -> str:
    """The recorder ``part`` of run ``item_attempt`` of item ``index``."""
    return f"{index}.{item_attempt}"


class SplitKind(TaskKind):
    """A kind whose work is split into items (module docstring); made by :func:`split_job_kind`."""

    def __init__(
        self,
        name: str,
        params_model: type[BaseModel],
        task_name: str,
        queue: str,
        *,
        item_attempts: int,
        on_item_failure: str | Callable[[Any], str],
        **options: Any,
    ) -> None:
        super().__init__(name, params_model, task_name, queue, **options)
        self.item_task = task_name + ITEM_TASK_SUFFIX
        self.merge_task = task_name + MERGE_TASK_SUFFIX
        self.item_attempts = item_attempts
        self.on_item_failure = on_item_failure

    def item_failure_policy(self, job: Job) -> str:
        """``"fail"`` or ``"finish"`` for this job: the kind's ``on_item_failure``, or what it
        answers for the job's parameters when it is a function. An answer that is neither is
        logged and taken as ``"fail"``."""
        policy = self.on_item_failure
        if callable(policy):
            try:
                policy = str(policy(self._stored(job.params)))
            except Exception:
                logger.exception("job kind %s: its on_item_failure function failed; the job fails", self.name)
                return "fail"
        if policy not in ON_ITEM_FAILURE:
            logger.error("job kind %s: on_item_failure gave %r; the job fails", self.name, policy)
            return "fail"
        return policy

    def item_signature(self, job: Job, item: JobItem) -> Any:
        """The Celery signature of the current run of ``item``: its task id, the kind's queue."""
        return signature(
            self.item_task,
            args=(str(job.id), job.attempt, item.index, item.attempt),
            task_id=item.task_id,
            queue=self.queue,
            app=current_app,
        )

    def prefetch(self, jobs: Sequence[Job]) -> dict[uuid.UUID, Any]:
        # Items are read in ``read``, under the job's lock (one query each); nothing to batch.
        return {}

    def read(self, job: Job, now: dt.datetime, observation: Any = None) -> Reading:
        """Before the split: nothing yet. After: the sum over items (module docstring)."""
        if "items" not in job.kind_state:
            return Reading(progress=None)
        rows = list(job.items.values_list("index", "state", "size", "attempt"))
        running = [(index, size, attempt) for index, state, size, attempt in rows if state == ItemState.RUNNING]
        recorded = read_recorded_parts(job.id, job.attempt, [_part(i, a) for i, _, a in running])
        ended = [row for row in rows if row[1] in ITEM_FINAL_STATES]
        current = sum(size for _, _, size, _ in ended)
        for index, size, attempt in running:
            progress = recorded.get(_part(index, attempt))
            if progress is not None and progress.total:
                current += min(size, size * progress.current // progress.total)
        failed = sum(1 for row in rows if row[1] == ItemState.FAILED)
        message = f"{len(ended) - failed:,} of {len(rows):,} parts done, {len(running):,} running"
        if failed:
            message += f", {failed:,} failed"
        total = sum(size for _, _, size, _ in rows) or None
        return Reading(progress=Progress(current, total, message))

    def cancel(self, job: Job) -> None:
        """Flag every recorder (cooperative stop) and revoke the split and every item task
        not yet ended (queued ones then never run)."""
        request_cancel(job.id)
        ids = [job.work_task_id] if job.work_task_id else []
        ids += list(job.items.exclude(state__in=ITEM_FINAL_STATES).values_list("task_id", flat=True))
        if ids:
            current_app.control.revoke(ids)

    def stop(self, job: Job) -> None:
        """Terminate the split task and every running item task (SIGKILL of their pool
        processes)."""
        ids = [job.work_task_id] if job.work_task_id else []
        ids += list(job.items.filter(state=ItemState.RUNNING).values_list("task_id", flat=True))
        if ids:
            current_app.control.revoke(ids, terminate=True, signal="SIGKILL")
            logger.warning("job %s: %s work tasks terminated", job.id, len(ids))

    def cancel_confirmed(self, job: Job, observation: Any) -> bool:
        """Before the split, as any work task (``TaskKind.cancel_confirmed``). After: True once
        no item runs with a live heartbeat, or ``CANCEL_TERMINATE_AFTER_S`` after the cancel
        (then running items are terminated)."""
        if "items" not in job.kind_state:
            return super().cancel_confirmed(job, observation)
        now = timezone.now()
        alive = now - dt.timedelta(seconds=settings.JOB_HEARTBEAT_TIMEOUT_S)
        if not job.items.filter(state=ItemState.RUNNING, heartbeat_at__gte=alive).exists():
            return True
        asked = job.cancel_requested_at or now
        if (now - asked).total_seconds() < CANCEL_TERMINATE_AFTER_S:
            return False
        self.stop(job)
        return True

    def finished(self, job: Job) -> None:
        """The job ended: its items not yet ended end ``cancelled``, their tasks are revoked
        (running ones terminated), and what the items recorded is forgotten, after commit."""
        rows = list(job.items.values_list("index", "attempt", "state", "task_id"))
        parts = [_part(index, run) for index, attempt, _, _ in rows for run in range(1, attempt + 1)]
        job_id, attempt = job.id, job.attempt
        if parts:
            transaction.on_commit(lambda: clear_recorded_parts(job_id, attempt, parts))
        running = [task_id for _, _, state, task_id in rows if state == ItemState.RUNNING]
        queued = [task_id for _, _, state, task_id in rows if state == ItemState.QUEUED]
        if not running and not queued:
            return
        job.items.exclude(state__in=ITEM_FINAL_STATES).update(state=ItemState.CANCELLED, finished_at=timezone.now())

        def revoke() -> None:
            try:
                if queued:
                    current_app.control.revoke(queued)
                if running:
                    current_app.control.revoke(running, terminate=True, signal="SIGKILL")
            except Exception as exc:
                logger.warning("job %s: item tasks not revoked (%s); their runs are fenced anyway", job.id, exc)

        transaction.on_commit(revoke)

    def task_ids(self, job: Job) -> list[str]:
        """The run and split tasks, every item's current run and the merge."""
        merge = job.kind_state.get("merge") or {}
        items = job.items.values_list("task_id", flat=True)
        return [i for i in (*super().task_ids(job), *items, merge.get("task_id", "")) if i]


def split_job_kind(
    name: str,
    *,
    params: type[P],
    split: Callable[[P], Sequence[Any]],
    merge: Callable[[P, list[Any]], Any],
    size: Callable[[Any], int] | None = None,
    queue: str = "jobs",
    item_attempts: int = DEFAULT_ITEM_ATTEMPTS,
    on_item_failure: Literal["fail", "finish"] | Callable[[P], str] = "fail",
    min_interval_ms: int = DEFAULT_MIN_INTERVAL_MS,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    time_limit_s: int = DEFAULT_TIME_LIMIT_S,
    title: str | None = None,
    summary: Callable[[P], str] | None = None,
) -> Callable[[ItemFunction[P]], Task]:
    """Register the decorated function as the work of one item of split job kind ``name``.

    Arguments, beside those of ``job_kind`` (``name``, ``params``, ``queue``,
    ``min_interval_ms``, ``max_attempts`` of the split task, ``time_limit_s`` of each task,
    ``title``, ``summary``): ``split`` a function of the parameters returning the items (a
    sequence of JSON-serialisable values; it runs in the split task, on the kind's queue);
    ``merge`` a function of the parameters and the items' results (a list in item order)
    returning the job's result (JSON-serialisable); ``size`` a function of an item returning
    its share of the progress total (an int ≥ 1, e.g. bytes; default
    :data:`DEFAULT_ITEM_SIZE` each); ``item_attempts`` (≥ 1) runs one item may have;
    ``on_item_failure`` ``"fail"`` or ``"finish"`` (module docstring), or a function of the
    parameters returning one of them, so a job's parameters may choose.

    The function is called as ``function(params_instance, item, recorder)`` and returns the
    item's result (JSON-serialisable); raising ``JobFailed`` fails the item without a retry.
    Returns the item task. Raises ``ValueError`` for a taken name, a limit below 1 or an
    unknown ``on_item_failure``.
    """
    if max_attempts < 1 or time_limit_s < 1 or item_attempts < 1:
        raise ValueError(f"job kind {name!r}: max_attempts, item_attempts and time_limit_s must be at least 1")
    if not callable(on_item_failure) and on_item_failure not in ON_ITEM_FAILURE:
        raise ValueError(f"job kind {name!r}: on_item_failure must be one of {ON_ITEM_FAILURE}")
    item_size = size or (lambda item: DEFAULT_ITEM_SIZE)

    def decorate(function: ItemFunction[P]) -> Task:
        task_name = TASK_NAME_PREFIX + name
        kind = SplitKind(
            name,
            params,
            task_name,
            queue,
            item_attempts=item_attempts,
            on_item_failure=on_item_failure,
            max_attempts=max_attempts,
            time_limit_s=time_limit_s,
            title=title,
            summary=summary,
        )
        register(kind)
        limits = {"soft_time_limit": time_limit_s, "time_limit": time_limit_s + HARD_LIMIT_GRACE_S}

        @shared_task(name=task_name, bind=True, throws=(WorkFailed,), **limits)  # type: ignore[untyped-decorator]
        def split_work(self: Task, job_id: str, attempt: int = 1) -> Any:
            return work_adapter().run_split(self, job_id, attempt, kind, params, split, item_size)

        @shared_task(name=kind.item_task, bind=True, throws=(ItemFailed,), **limits)  # type: ignore[untyped-decorator]
        def run_item(self: Task, job_id: str, attempt: int, index: int, item_attempt: int) -> Any:
            adapter = work_adapter()
            return adapter.run_item(self, job_id, attempt, index, item_attempt, kind, params, function, min_interval_ms)

        @shared_task(name=kind.merge_task, bind=True, throws=(WorkFailed,), **limits)  # type: ignore[untyped-decorator]
        def run_merge(self: Task, job_id: str, attempt: int) -> Any:
            return work_adapter().run_merge(self, job_id, attempt, kind, params, merge)

        run_item.__doc__ = function.__doc__
        split_work.__doc__ = f"Split a {name} job into items ({split.__name__})."
        run_merge.__doc__ = f"Merge the items of a {name} job ({merge.__name__})."
        return run_item

    return decorate
