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
  → the task ends cleanly and the job ``cancelled``;
- it runs past ``time_limit_s`` → Celery's soft limit raises inside it → ``failed`` with
  "time limit exceeded (N s)" (Celery's hard limit kills the work ``TIME_LIMIT_GRACE_S``
  later if it does not stop);
- anything else → ``failed`` with "internal error …" (the traceback goes to the worker log
  only).

Whenever the job ends ``failed``, the task ends as FAILURE (``WorkFailed`` with the job's
error), so Flower and the admin's task results show the failure where their users look.

The task's arguments are ``(job_id, attempt)``. While it runs it beats
(``tasks_app.heartbeat``); if its worker dies, the supervisor runs the job again as attempt
``attempt + 1`` (up to ``max_attempts``), and a late copy of an older attempt does nothing.

Modules holding such kinds must be imported by every process (web and workers): list them in
``settings.JOB_KIND_MODULES``.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar

from celery import Task, current_app, shared_task
from django.conf import settings
from django.utils import timezone
from pydantic import BaseModel

from tasks_app.kinds.base import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_TIME_LIMIT_S,
    JobKind,
    Reading,
    default_title,
)
from tasks_app.kinds.port import work_adapter
from tasks_app.kinds.registry import register
from tasks_app.progress import (
    DEFAULT_MIN_INTERVAL_MS,
    Progress,
    ProgressRecorder,
    read_recorded_many,
    read_recorded_progress,
    request_cancel,
)

if TYPE_CHECKING:
    from tasks_app.models import Job

logger = logging.getLogger(__name__)

#: What :meth:`TaskKind.prefetch` gives a job whose attempt recorded nothing yet.
NOTHING_RECORDED: Final = object()

P = TypeVar("P", bound=BaseModel)
#: Prefix of the Celery task name of every decorated kind.
TASK_NAME_PREFIX: Final = "tasks_app.kind."
#: Seconds a cancelled work task gets to stop on its own (the recorder raises
#: ``JobCancelled`` on its next write) before it is terminated.
CANCEL_TERMINATE_AFTER_S: Final = 1.0
#: Seconds between Celery's soft time limit (raised inside the work) and its hard limit
#: (the pool process is killed).
HARD_LIMIT_GRACE_S: Final = 5

WorkFunction = Callable[[P, ProgressRecorder], Any]


class JobFailed(Exception):
    """Raise from a kind's work function to end its job ``failed`` with this message
    (short human text: it is shown to the user as it is)."""


class WorkFailed(Exception):
    """What a work task raises after its job ended ``failed`` (the job's error as message),
    so Celery records the task as FAILURE. An expected error of the task (``throws``): Celery
    logs it in one line, without a traceback."""


class TaskKind(JobKind):
    """A kind whose work runs in a Celery task and reports through a ``ProgressRecorder``.

    ``read`` relays what the current attempt's recorder wrote last; ``cancel`` sets the
    recorder's cancel flag (cooperative stop) and revokes the task in case it is still
    queued; ``cancel_confirmed`` waits for the work to stop, at most
    ``CANCEL_TERMINATE_AFTER_S``, then terminates it. The task ends the job itself
    (``attempts.job_succeed`` / ``job_fail`` / ``work_stopped``).
    """

    def __init__(
        self,
        name: str,
        params_model: type[BaseModel],
        task_name: str,
        queue: str,
        *,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        time_limit_s: int = DEFAULT_TIME_LIMIT_S,
        title: str | None = None,
        summary: Callable[[Any], str] | None = None,
        total: Callable[[Any], int | None] | None = None,
    ) -> None:
        self.name = name  # type: ignore[misc]  # set per instance: one class, many kinds
        self.title = title or default_title(name)  # type: ignore[misc]
        self.params_model = params_model  # type: ignore[misc]
        self.work_task = task_name  # type: ignore[misc]
        self.queue = queue  # type: ignore[misc]
        self.max_attempts = max_attempts  # type: ignore[misc]
        self.time_limit_s = time_limit_s  # type: ignore[misc]
        self._summary = summary
        self._total = total

    def _stored(self, params: dict[str, Any]) -> BaseModel:
        # Stored parameters were validated when the job started: build the model without
        # validating again (validators may query the database, e.g. csv_profile's upload).
        return self.params_model.model_construct(**params)

    def summary(self, params: dict[str, Any]) -> str:
        """The ``summary=`` function's text for these parameters ("" without one). It runs for
        every job frame, so an error in it is logged and gives "" rather than break the frame."""
        if self._summary is None:
            return ""
        try:
            return str(self._summary(self._stored(params)))
        except Exception:
            logger.exception("job kind %s: its summary function failed; the job is shown without one", self.name)
            return ""

    def initial_total(self, params: dict[str, Any]) -> int | None:
        """The ``total=`` function's value for these parameters (None without one)."""
        return None if self._total is None else self._total(self._stored(params))

    def prefetch(self, jobs: Sequence[Job]) -> Mapping[uuid.UUID, Any]:
        """What the current attempts of ``jobs`` recorded, in one cache read: ``{job id:
        Progress}`` for the jobs that recorded something, and the rest as ``NOTHING_RECORDED``."""
        recorded = read_recorded_many([(job.id, job.attempt) for job in jobs])
        return {job.id: recorded.get((job.id, job.attempt), NOTHING_RECORDED) for job in jobs}

    def read(self, job: Job, now: dt.datetime, observation: Any = None) -> Reading:
        """The progress the current attempt recorded last (outcomes arrive through services);
        ``observation`` is what :meth:`prefetch` read for it, if a tick prefetched."""
        if isinstance(observation, Progress):
            return Reading(progress=observation)
        if observation is NOTHING_RECORDED:
            return Reading(progress=None)
        return Reading(progress=read_recorded_progress(job.id, job.attempt))

    def cancel(self, job: Job) -> None:
        """Flag the recorder (cooperative stop) and revoke the work task if still queued."""
        request_cancel(job.id)
        if job.work_task_id:
            current_app.control.revoke(job.work_task_id)

    def stop(self, job: Job) -> None:
        """Revoke the current attempt's task with ``terminate``: its pool process is killed
        (SIGKILL), which frees the worker slot whatever the work is doing."""
        if job.work_task_id:
            current_app.control.revoke(job.work_task_id, terminate=True, signal="SIGKILL")
            logger.warning("job %s: work task %s terminated", job.id, job.work_task_id)

    def cancel_confirmed(self, job: Job, observation: Any) -> bool:
        """True when the work cannot write any more: it never started (its queued task was
        revoked), its heartbeat stopped, or it had ``CANCEL_TERMINATE_AFTER_S`` to stop on its
        own and is now terminated. A work task that stops on its own ends the job through
        ``attempts.work_stopped`` before this is asked."""
        now = timezone.now()
        if job.heartbeat_at is None:
            return True
        if (now - job.heartbeat_at).total_seconds() > settings.JOB_HEARTBEAT_TIMEOUT_S:
            return True
        asked = job.cancel_requested_at or now
        if (now - asked).total_seconds() < CANCEL_TERMINATE_AFTER_S:
            return False
        self.stop(job)
        return True


def job_kind(
    name: str,
    *,
    params: type[P],
    queue: str = "jobs",
    min_interval_ms: int = DEFAULT_MIN_INTERVAL_MS,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    time_limit_s: int = DEFAULT_TIME_LIMIT_S,
    title: str | None = None,
    summary: Callable[[P], str] | None = None,
    total: Callable[[P], int | None] | None = None,
) -> Callable[[WorkFunction[P]], Task]:
    """Register the decorated function as the work of job kind ``name``.

    Arguments: ``name`` the kind's name in ``job.start`` (letters, digits, ``_``, ``-``);
    ``params`` its parameter schema, a pydantic model (subclass ``StrictParams`` to refuse
    unknown parameters and coercion; the validation context holds ``{"owner": user}``);
    ``queue`` the Celery queue of its task (a worker must consume it; ``make run`` runs one
    for ``jobs``); ``min_interval_ms`` the least time between two progress writes;
    ``max_attempts`` (≥ 1) how many times the work may run when its worker is lost (the
    supervisor runs it again; default 2); ``time_limit_s`` (≥ 1) seconds one run may take
    (default 3600; Celery's soft limit, hard limit 5 s later); ``title`` what people call
    the kind, the title of its cards (default: the name in words, ``"my_kind"`` → ``"My
    kind"``); ``summary`` a function of the parameters (an instance of ``params``) returning
    a few words about them, shown beside the title (``"below 100,000"``; called for every job
    frame, so quick and without database or network; if it raises, the error is logged and
    the job has no summary); ``total`` a function of the parameters returning the progress
    total known before the work reports (e.g. a file's size), so viewers see it from the
    start (None: unknown until the first ``set_progress``).

    The function is called as ``function(params_instance, recorder)``. Returns the Celery
    task (named ``tasks_app.kind.<name>``; its arguments are the job id and the attempt).
    Raises ``ValueError`` when the name is already registered or a limit is below 1.
    """
    if max_attempts < 1 or time_limit_s < 1:
        raise ValueError(f"job kind {name!r}: max_attempts and time_limit_s must be at least 1")

    def decorate(function: WorkFunction[P]) -> Task:
        task_name = TASK_NAME_PREFIX + name

        kind = TaskKind(
            name,
            params,
            task_name,
            queue,
            max_attempts=max_attempts,
            time_limit_s=time_limit_s,
            title=title,
            summary=summary,
            total=total,
        )
        register(kind)

        @shared_task(  # type: ignore[untyped-decorator]
            name=task_name,
            bind=True,
            throws=(WorkFailed,),
            soft_time_limit=time_limit_s,
            time_limit=time_limit_s + HARD_LIMIT_GRACE_S,
        )
        def run_work(self: Task, job_id: str, attempt: int = 1) -> Any:
            return work_adapter().run_work(self, job_id, attempt, name, params, function, min_interval_ms, time_limit_s)

        run_work.__doc__ = function.__doc__
        return run_work

    return decorate
