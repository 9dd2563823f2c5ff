"""The work tasks' bodies: what the Celery tasks of decorated kinds run (the adapters).

``tasks_app.kinds.task_kind.job_kind`` and ``tasks_app.kinds.split_kind.split_job_kind``
make the tasks; their bodies call these functions through ``tasks_app.kinds.port`` (kinds
never import services). Each claims the attempt (``tasks_app.attempts``,
``tasks_app.items``), beats (``tasks_app.heartbeat``), runs the kind's function with a
:class:`~tasks_app.progress.ProgressRecorder`, and records how it ended; a run of an older
attempt, superseded or stopped, writes nothing. The outcomes are those of the kinds' module
docstrings (``job_kind``: succeeded, failed, cancelled, time limit; ``split_job_kind``:
split, items, merge).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded
from pydantic import BaseModel

from tasks_app import attempts, items, services
from tasks_app.errors import InvalidParams
from tasks_app.heartbeat import Heartbeat
from tasks_app.kinds.base import validate_params
from tasks_app.kinds.split_kind import MAX_FAILED_SAMPLES, ItemFailed, SplitKind, _part
from tasks_app.kinds.task_kind import JobFailed, WorkFailed, WorkFunction
from tasks_app.models import ItemState, Job
from tasks_app.progress import JobCancelled, Progress, ProgressRecorder, WorkSuperseded

logger = logging.getLogger(__name__)

P = TypeVar("P", bound=BaseModel)
ItemFunction = Callable[[P, Any, ProgressRecorder], Any]


def run_work(
    task: Task,
    job_id: str,
    attempt: int,
    name: str,
    params_model: type[P],
    function: WorkFunction[P],
    min_interval_ms: int,
    time_limit_s: int,
) -> Any:
    job = attempts.work_claim(job_id=job_id, attempt=attempt)
    if job is None:
        return None
    error: str | None = None
    try:
        values = validate_params(params_model, job.params, owner=job.owner)
    except InvalidParams as exc:
        error = f"the job's parameters are no longer valid: {exc.fields}"
    else:
        with Heartbeat(job_id, attempt, attempts.work_heartbeat) as heartbeat:
            recorder = ProgressRecorder(
                job_id, attempt=attempt, min_interval_ms=min_interval_ms, superseded=lambda: heartbeat.superseded
            )
            try:
                result = function(values, recorder)
            except WorkSuperseded:
                logger.info("%s: job %s attempt %s superseded; it stopped without a result", name, job_id, attempt)
                return None
            except JobCancelled:
                attempts.work_stopped(job_id=job_id, attempt=attempt)
                logger.info("%s: job %s cancelled after %s progress writes", name, job_id, recorder.writes)
                return None
            except SoftTimeLimitExceeded:
                error = services.time_limit_message(time_limit_s)
            except JobFailed as exc:
                error = str(exc) or f"{name} failed"
            except Exception:
                logger.exception("%s: job %s failed unexpectedly (task %s)", name, job_id, task.request.id)
                error = f"internal error in {name}; the worker log has the details (task {task.request.id})"
    if error is not None:
        attempts.job_fail(job_id=job_id, error=error, attempt=attempt)
        # A FAILURE result for the task, so Flower and the admin's task results show it; the
        # exception is raised here, outside the work function, so the stored traceback holds
        # none of its frames (the worker log has them, for an unexpected error).
        raise WorkFailed(error) from None
    attempts.job_succeed(job_id=job_id, result=result, progress=recorder.progress, attempt=attempt)
    logger.info("%s: job %s done after %s progress writes", name, job_id, recorder.writes)
    return result


def _values(params_model: type[P], job: Job) -> P:
    return validate_params(params_model, job.params, owner=job.owner)


T = TypeVar("T")


def _step(task: Task, kind: SplitKind, job_id: str, doing: str, call: Callable[[], T]) -> tuple[T | None, str | None]:
    """Run the split or the merge (``doing``: ``"splitting"``, ``"merging"``): ``(value, None)``,
    or ``(None, error)`` with the job's error for people when it raised (the traceback of an
    unexpected error goes to the worker log only)."""
    try:
        return call(), None
    except InvalidParams as exc:
        return None, f"the job's parameters are no longer valid: {exc.fields}"
    except JobFailed as exc:
        return None, str(exc) or f"{kind.name} failed"
    except SoftTimeLimitExceeded:
        return None, f"time limit exceeded ({kind.time_limit_s} s) while {doing}"
    except Exception:
        logger.exception("%s: %s job %s failed unexpectedly (task %s)", kind.name, doing, job_id, task.request.id)
        return None, f"internal error {doing} {kind.name}; the worker log has the details (task {task.request.id})"


def run_split(
    task: Task,
    job_id: str,
    attempt: int,
    kind: SplitKind,
    params_model: type[P],
    split: Callable[[P], Sequence[Any]],
    size: Callable[[Any], int],
) -> Any:
    job = attempts.work_claim(job_id=job_id, attempt=attempt)
    if job is None:
        return None
    with Heartbeat(job_id, attempt, attempts.work_heartbeat):
        parts, error = _step(
            task,
            kind,
            job_id,
            "splitting",
            lambda: [(item, max(1, int(size(item)))) for item in split(_values(params_model, job))],
        )
    if error is not None or parts is None:
        attempts.job_fail(job_id=job_id, error=error or "nothing to split", attempt=attempt)
        raise WorkFailed(error) from None
    made = items.items_create(job_id=job_id, attempt=attempt, items=parts)
    return {"items": made}


def run_item(
    task: Task,
    job_id: str,
    attempt: int,
    index: int,
    item_attempt: int,
    kind: SplitKind,
    params_model: type[P],
    function: ItemFunction[P],
    min_interval_ms: int,
) -> Any:
    claimed = items.item_claim(job_id=job_id, attempt=attempt, index=index, item_attempt=item_attempt)
    if claimed is None:
        return None
    job, item = claimed
    error: str | None = None
    retry = True
    with Heartbeat(job_id, item_attempt, lambda _job_id, run: items.item_heartbeat(item.pk, run)) as heartbeat:
        recorder = ProgressRecorder(
            job_id,
            attempt=attempt,
            part=_part(index, item_attempt),
            min_interval_ms=min_interval_ms,
            superseded=lambda: heartbeat.superseded,
        )
        try:
            result = function(_values(params_model, job), item.item, recorder)
        except WorkSuperseded:
            logger.info("%s: job %s item %s run %s superseded", kind.name, job_id, index, item_attempt)
            return None
        except JobCancelled:
            items.item_stopped(job_id=job_id, attempt=attempt, index=index, item_attempt=item_attempt)
            return None
        except JobFailed as exc:
            error, retry = str(exc) or f"{kind.name} part failed", False
        except InvalidParams as exc:
            error, retry = f"the job's parameters are no longer valid: {exc.fields}", False
        except SoftTimeLimitExceeded:
            error = f"time limit exceeded ({kind.time_limit_s} s)"
        except Exception as exc:
            logger.exception(
                "%s: job %s item %s failed unexpectedly (task %s)", kind.name, job_id, index, task.request.id
            )
            error = f"{type(exc).__name__} in {kind.name} (task {task.request.id}; the worker log has the details)"
    if error is not None:
        items.item_fail(
            job_id=job_id, attempt=attempt, index=index, item_attempt=item_attempt, error=error, retry=retry
        )
        raise ItemFailed(error) from None
    items.item_succeed(job_id=job_id, attempt=attempt, index=index, item_attempt=item_attempt, result=result)
    return result


def run_merge(
    task: Task,
    job_id: str,
    attempt: int,
    kind: SplitKind,
    params_model: type[P],
    merge: Callable[[P, list[Any]], Any],
) -> Any:
    claimed = items.merge_claim(job_id=job_id, attempt=attempt, task_id=str(task.request.id))
    if claimed is None:
        return None
    job, rows = claimed
    failed = [row for row in rows if row.state == ItemState.FAILED]
    result, error = _step(
        task,
        kind,
        job_id,
        "merging",
        lambda: merge(_values(params_model, job), [r.result for r in rows if r.state == ItemState.SUCCEEDED]),
    )
    if error is not None:
        attempts.job_fail(job_id=job_id, error=error, attempt=attempt)
        raise WorkFailed(error) from None
    if failed and isinstance(result, dict):
        samples = [{"index": row.index, "item": row.item, "error": row.error} for row in failed[:MAX_FAILED_SAMPLES]]
        result = {**result, "failed_items": {"count": len(failed), "samples": samples}}
    total = sum(row.size for row in rows)
    done = f"{len(rows) - len(failed):,} of {len(rows):,} parts done" + (f", {len(failed):,} failed" if failed else "")
    attempts.job_succeed(job_id=job_id, result=result, progress=Progress(total, total or None, done), attempt=attempt)
    return None
