"""Job kinds whose work is a Celery task: the :func:`job_kind` decorator (public API).

::

    class Params(StrictParams):
        limit: int = Field(ge=2, le=10_000_000)

    @job_kind("primes", params=Params, queue="jobs")
    def primes(params: Params, recorder: ProgressRecorder) -> dict[str, int]:
        for n in range(2, params.limit):
            ...
            recorder.set_progress(n, params.limit, f"{n:,} checked")
        return {"count": ...}

The decorator registers a Celery task named ``tasks_app.kind.<name>`` and a kind
``<name>`` in ``tasks_app.kinds.REGISTRY``. ``job.start`` with that kind validates
``params`` with the model, creates the job, and ``run_job`` sends the task to ``queue``;
the task calls the function with the validated parameters and a
:class:`~tasks_app.progress.ProgressRecorder`, and ends the job:

- the function returns → ``succeeded`` with the returned value as the result (it must be
  JSON-serialisable);
- it raises :class:`JobFailed` → ``failed`` with that message;
- it raises :class:`~tasks_app.progress.JobCancelled` (from the recorder, after a cancel)
  → the task ends cleanly and the job's next poll ends it ``cancelled``;
- anything else → ``failed`` with "internal error …" (the traceback goes to the worker log
  and Celery records the task as failed).

Modules holding such kinds must be imported by every process (web and workers): put them in
a module called ``jobkinds`` of an installed app (found at start-up) or under
``tasks_app/kinds/``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, TypeVar

from celery import Task, current_app, shared_task
from pydantic import BaseModel

from tasks_app.errors import InvalidParams
from tasks_app.kinds.base import JobKind, Reading, validate_params
from tasks_app.kinds.registry import register
from tasks_app.progress import (
    DEFAULT_MIN_INTERVAL_MS,
    JobCancelled,
    ProgressRecorder,
    read_recorded_progress,
    request_cancel,
)

if TYPE_CHECKING:
    from tasks_app.models import Job

logger = logging.getLogger(__name__)

P = TypeVar("P", bound=BaseModel)
#: Prefix of the Celery task name of every decorated kind.
TASK_NAME_PREFIX: Final = "tasks_app.kind."

WorkFunction = Callable[[P, ProgressRecorder], Any]


class JobFailed(Exception):
    """Raise from a kind's work function to end its job ``failed`` with this message
    (short human text: it is shown to the user as it is)."""


class TaskKind(JobKind):
    """A kind whose work runs in a Celery task and reports through a ``ProgressRecorder``.

    ``read`` relays what the recorder wrote last; ``cancel`` sets the recorder's cancel flag
    (cooperative stop) and revokes the task in case it is still queued. The task ends the job
    itself (``services.job_succeed`` / ``services.job_fail``).
    """

    def __init__(self, name: str, params_model: type[BaseModel], task_name: str, queue: str) -> None:
        self.name = name  # type: ignore[misc]  # set per instance: one class, many kinds
        self.params_model = params_model  # type: ignore[misc]
        self.work_task = task_name  # type: ignore[misc]
        self.queue = queue  # type: ignore[misc]

    def read(self, job: Job, now: dt.datetime, observation: Any = None) -> Reading:
        """The progress the work task recorded last (outcomes arrive through services)."""
        return Reading(progress=read_recorded_progress(job.id))

    def cancel(self, job: Job) -> None:
        """Flag the recorder (cooperative stop) and revoke the work task if still queued."""
        request_cancel(job.id)
        if job.work_task_id:
            current_app.control.revoke(job.work_task_id)


def job_kind(
    name: str,
    *,
    params: type[P],
    queue: str = "jobs",
    min_interval_ms: int = DEFAULT_MIN_INTERVAL_MS,
) -> Callable[[WorkFunction[P]], Task]:
    """Register the decorated function as the work of job kind ``name``.

    Arguments: ``name`` the kind's name in ``job.start`` (letters, digits, ``_``, ``-``);
    ``params`` its parameter schema, a pydantic model (subclass ``StrictParams`` to refuse
    unknown parameters and coercion; the validation context holds ``{"owner": user}``);
    ``queue`` the Celery queue of its task (a worker must consume it; ``make run`` runs one
    for ``jobs``); ``min_interval_ms`` the least time between two progress writes.

    The function is called as ``function(params_instance, recorder)``. Returns the Celery
    task (named ``tasks_app.kind.<name>``; its argument is the job id). Raises
    ``ValueError`` when the name is already registered.
    """

    def decorate(function: WorkFunction[P]) -> Task:
        task_name = TASK_NAME_PREFIX + name

        register(TaskKind(name, params, task_name, queue))

        @shared_task(name=task_name, bind=True)  # type: ignore[untyped-decorator]
        def run_work(self: Task, job_id: str) -> Any:
            return _run_work(self, job_id, name, params, function, min_interval_ms)

        run_work.__doc__ = function.__doc__
        return run_work

    return decorate


def _run_work(
    task: Task,
    job_id: str,
    name: str,
    params_model: type[P],
    function: WorkFunction[P],
    min_interval_ms: int,
) -> Any:
    from tasks_app import services  # services import the registry, which imports this module
    from tasks_app.models import Job

    job = Job.objects.select_related("owner").filter(pk=job_id).first()
    if job is None or job.is_final:
        logger.info("%s: job %s is gone or already ended; nothing to do", name, job_id)
        return None
    try:
        values = validate_params(params_model, job.params, owner=job.owner)
    except InvalidParams as exc:
        services.job_fail(job_id=job_id, error=f"the job's parameters are no longer valid: {exc.fields}")
        return None
    recorder = ProgressRecorder(job_id, min_interval_ms=min_interval_ms)
    try:
        result = function(values, recorder)
    except JobCancelled:
        # The job is ``cancelling``; its next poll ends it ``cancelled``.
        logger.info("%s: job %s cancelled after %s progress writes", name, job_id, recorder.writes)
        return None
    except JobFailed as exc:
        services.job_fail(job_id=job_id, error=str(exc) or f"{name} failed")
        return None
    except Exception:
        logger.exception("%s: job %s failed unexpectedly (task %s)", name, job_id, task.request.id)
        services.job_fail(
            job_id=job_id,
            error=f"internal error in {name}; the worker log has the details (task {task.request.id})",
        )
        raise
    services.job_succeed(job_id=job_id, result=result, progress=recorder.progress)
    logger.info("%s: job %s done after %s progress writes", name, job_id, recorder.writes)
    return result
