"""What a job kind is: a parameter schema, and how to start, read and cancel its work.

A kind is a :class:`JobKind` subclass instance registered in ``tasks_app.kinds.REGISTRY``
(built-in kinds live under ``tasks_app/kinds/``; kinds whose work is a Celery task are
made with the ``tasks_app.kinds.job_kind`` decorator). Services call these hooks; a hook
never changes the job's state itself.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from django.conf import settings
from pydantic import BaseModel, ConfigDict, ValidationError

from tasks_app.errors import InvalidParams
from tasks_app.progress import Progress

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from tasks_app.models import Job

M = TypeVar("M", bound=BaseModel)

#: Default ``max_attempts`` of a kind: the first run and one more after a lost worker.
DEFAULT_MAX_ATTEMPTS = 2
#: Default ``time_limit_s`` of a kind, seconds.
DEFAULT_TIME_LIMIT_S = 3600

__all__ = ["JobKind", "Progress", "Reading", "StrictParams", "default_title", "validate_params"]


def default_title(name: str) -> str:
    """A kind's title when it gives none: its name in words (``"csv_profile"`` → ``"Csv profile"``)."""
    return name.replace("_", " ").replace("-", " ").capitalize()


@dataclass(frozen=True)
class Reading:
    """What one poll learned: the latest progress (None: nothing recorded yet) and,
    when the work ended, its result (``succeeded``) or its error (``failed``).

    ``kind_state`` (None: unchanged) replaces ``Job.kind_state``. ``retrying`` (None: not
    retrying) tells viewers that the work could not be reached and when the next attempt
    is: ``{"attempt": int, "max_attempts": int, "next_attempt_in_s": float, "reason": str}``.
    """

    progress: Progress | None
    succeeded: bool = False
    failed: bool = False
    result: Any = None
    error: str = ""
    kind_state: dict[str, Any] | None = None
    retrying: dict[str, Any] | None = None


class JobKind:
    """Base class of job kinds. Subclasses set ``name`` and ``params_model`` and override the
    hooks they need.

    Hook order in one poll (``tasks_app.polling.job_poll``): :meth:`observe` first, outside
    any transaction (it may wait on the network), then, under the job's row lock,
    :meth:`read` (running jobs) or :meth:`cancel_confirmed` (jobs being cancelled), then
    :meth:`next_poll_in_ms`.
    """

    #: Name clients use in ``job.start`` (``kind``).
    name: ClassVar[str] = ""
    #: What people call the kind: the title of its cards (``"Simulated job"``); the job
    #: object's ``title``. Default: :func:`default_title` of ``name``.
    title: ClassVar[str] = ""
    #: The parameter schema: a pydantic model; :meth:`validate` checks ``params`` with it.
    params_model: ClassVar[type[BaseModel]]
    #: Celery task name of the work task to dispatch at start, if any.
    #: The task receives ``(job_id: str)`` and reports through a ``ProgressRecorder``.
    work_task: ClassVar[str | None] = None
    #: Celery queue of the work task.
    queue: ClassVar[str] = "jobs"
    #: Runs of the work a job may have: a work task whose worker was lost runs again until
    #: this many attempts were made, then the job fails (kinds with a work task).
    max_attempts: ClassVar[int] = DEFAULT_MAX_ATTEMPTS
    #: Seconds a run may take (a work task's attempt, or a poll-driven job from its start);
    #: past it the job ends ``failed`` with "time limit exceeded (N s)".
    time_limit_s: ClassVar[int] = DEFAULT_TIME_LIMIT_S

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__dict__.get("title") and cls.name:
            cls.title = default_title(cls.name)

    def summary(self, params: dict[str, Any]) -> str:
        """The job's parameters for people, in a few words (``"step 3% every 200 ms"``); the
        job object's ``summary``, shown beside the card's title. ``params`` are the job's
        validated parameters as stored (what :meth:`validate` returned). Called for every
        job frame: quick, no database or network. The default says nothing (``""``)."""
        return ""

    def initial_total(self, params: dict[str, Any]) -> int | None:
        """The progress total known before the work reports any (e.g. a file's size, in the
        kind's units), from the validated ``params``; it is the job's total from its
        creation. None (the default): unknown until the work reports it."""
        return None

    def validate(self, params: dict[str, Any], *, owner: User) -> dict[str, Any]:
        """Return the cleaned parameters (JSON-serialisable) or raise :class:`InvalidParams`.

        The default validates with ``params_model`` (validation context ``{"owner": owner}``,
        for checks that depend on the user) and returns its JSON dump without unset optional
        fields.
        """
        model = validate_params(self.params_model, params, owner=owner)
        return model.model_dump(mode="json", exclude_none=True)

    @property
    def observes(self) -> bool:
        """True when the kind overrides :meth:`observe`: the poll then runs it outside any
        transaction and takes the row lock twice; other kinds are polled with one read."""
        return type(self).observe is not JobKind.observe

    def observe(self, job: Job, now: dt.datetime) -> Any:
        """Look at the work from outside the database transaction (network calls go here);
        the returned value reaches :meth:`read` or :meth:`cancel_confirmed` of the same poll.
        Called for ``running`` and ``cancelling`` jobs. The default observes nothing."""
        return None

    def prefetch(self, jobs: Sequence[Job]) -> Mapping[uuid.UUID, Any]:
        """Observations of many row-locked jobs of this kind in one go, by job id, for a tick
        that polls them together (``tasks_app.polling.job_poll_tick``): each reaches :meth:`read` as
        ``observation`` (a job missing from the mapping gets None). Only for kinds that do not
        :meth:`observe`; for reads that cost a round trip each (the recorded progress in
        Redis). The default fetches nothing."""
        return {}

    def read(self, job: Job, now: dt.datetime, observation: Any = None) -> Reading:
        """Read the job's progress at ``now``; called by every poll of a running job."""
        raise NotImplementedError

    def cancel(self, job: Job) -> None:
        """Ask the work to stop (idempotent, quick, no network waits: it runs right after
        ``job_cancel`` committed ``cancelling``). The default has no work to stop."""

    def stop(self, job: Job) -> None:
        """Stop the work at once, whatever it is doing (the last resort after a cancel that
        was not confirmed, a time limit, or a lost attempt); quick, no network waits, safe to
        repeat. The default has no work to stop."""

    def cancel_confirmed(self, job: Job, observation: Any) -> bool:
        """True when a ``cancelling`` job may end ``cancelled`` now; False polls again.
        The default confirms at once."""
        return True

    def task_ids(self, job: Job) -> list[str]:
        """The job's Celery task ids, for the admin's "task results" link: its ``run_job`` and
        its work task (those it has)."""
        return [task_id for task_id in (job.celery_task_id, job.work_task_id) if task_id]

    def finished(self, job: Job) -> None:
        """The row-locked job is being saved in a final state (inside its transaction): tidy
        what the kind keeps beside the job. The default keeps nothing."""

    def next_poll_in_ms(self, job: Job, now: dt.datetime) -> int:
        """Countdown to the next poll, in milliseconds (default ``PROGRESS_POLL_INTERVAL_MS``)."""
        return int(settings.PROGRESS_POLL_INTERVAL_MS)


class StrictParams(BaseModel):
    """Base of parameter models: unknown parameters are errors, and no silent coercion
    (``"5"`` is not 5, ``true`` is not 1)."""

    model_config = ConfigDict(extra="forbid", strict=True)


#: Plainer words for pydantic's most common errors (the others keep pydantic's message).
_MESSAGES: dict[str, str] = {
    "missing": "this parameter is required",
    "extra_forbidden": "unknown parameter",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "dict_type": "must be an object",
}


def validate_params(model: type[M], params: dict[str, Any], *, owner: User | None) -> M:
    """``params`` checked by the pydantic ``model``; raises :class:`InvalidParams` whose
    ``fields`` map each bad parameter (dotted path for nested ones) to its messages."""
    try:
        return model.model_validate(params, context={"owner": owner})
    except ValidationError as exc:
        fields: dict[str, list[str]] = {}
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"]) or "params"
            message = _MESSAGES.get(error["type"], str(error["msg"])).removeprefix("Value error, ")
            fields.setdefault(name, []).append(message)
        raise InvalidParams(fields) from None
