"""What a job kind is: a parameter schema, and how to start, read and cancel its work.

A kind is a module under ``tasks_app/kinds/`` holding one :class:`JobKind` subclass
instance, registered in ``tasks_app.kinds.REGISTRY``. Services call these hooks, always
inside the job's transaction; a hook never changes the job's state itself.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from django.conf import settings

from tasks_app.errors import InvalidParams

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from tasks_app.models import Job


@dataclass(frozen=True)
class Progress:
    """A progress reading: ``current`` of ``total`` units (``total`` None when unknown)."""

    current: int
    total: int | None
    message: str = ""


@dataclass(frozen=True)
class Reading:
    """What one poll learned: the latest progress (None: nothing recorded yet) and,
    when the work ended, its result (``succeeded``) or its error (``failed``)."""

    progress: Progress | None
    succeeded: bool = False
    failed: bool = False
    result: Any = None
    error: str = ""


class JobKind:
    """Base class of job kinds. Subclasses set ``name`` and override the hooks they need."""

    #: Name clients use in ``job.start`` (``kind``).
    name: ClassVar[str] = ""
    #: Celery task name of the work task to dispatch on queue ``jobs`` at start, if any.
    #: The task receives ``(job_id: str)`` and reports through a ``ProgressRecorder``.
    work_task: ClassVar[str | None] = None

    def validate(self, params: dict[str, Any], *, owner: User) -> dict[str, Any]:
        """Return the cleaned parameters or raise :class:`InvalidParams` with field messages."""
        raise NotImplementedError

    def read(self, job: Job, now: dt.datetime) -> Reading:
        """Read the job's progress at ``now``; called by every poll of a running job."""
        raise NotImplementedError

    def cancel(self, job: Job) -> None:
        """Ask the work to stop (idempotent). The default has no work to stop."""

    def next_poll_in_ms(self, job: Job, now: dt.datetime) -> int:
        """Countdown to the next poll, in milliseconds (default ``PROGRESS_POLL_INTERVAL_MS``)."""
        return int(settings.PROGRESS_POLL_INTERVAL_MS)


class ParamReader:
    """Reads typed parameters from a client's ``params`` object, collecting field errors.

    Usage: ``r = ParamReader(params, allowed={...}); step = r.integer("step", ...);
    r.raise_if_invalid()``. Unknown parameter names are errors too.
    """

    def __init__(self, params: dict[str, Any], *, allowed: set[str]) -> None:
        self.params = params
        self.errors: dict[str, list[str]] = {}
        for name in sorted(set(params) - allowed):
            self.errors[name] = ["unknown parameter"]

    def add_error(self, name: str, message: str) -> None:
        """Record one message for the field ``name``."""
        self.errors.setdefault(name, []).append(message)

    def integer(self, name: str, *, default: int | None, minimum: int, maximum: int) -> int | None:
        """An integer in ``[minimum, maximum]``; ``default`` when absent (None: optional)."""
        if name not in self.params or self.params[name] is None:
            return default
        value = self.params[name]
        if isinstance(value, bool) or not isinstance(value, int):
            self.add_error(name, "must be a whole number")
            return default
        if not minimum <= value <= maximum:
            self.add_error(name, f"must be between {minimum} and {maximum}")
            return default
        return value

    def string(
        self, name: str, *, required: bool, max_length: int, choices: tuple[str, ...] | None = None
    ) -> str | None:
        """A string of at most ``max_length`` characters, optionally one of ``choices``."""
        if name not in self.params or self.params[name] is None:
            if required:
                self.add_error(name, "this parameter is required")
            return None
        value = self.params[name]
        if not isinstance(value, str):
            self.add_error(name, "must be a string")
            return None
        if len(value) > max_length:
            self.add_error(name, f"must be at most {max_length} characters")
            return None
        if choices is not None and value not in choices:
            self.add_error(name, "must be one of " + ", ".join(repr(c) for c in choices))
            return None
        return value

    def raise_if_invalid(self) -> None:
        """Raise :class:`InvalidParams` when any field had an error."""
        if self.errors:
            raise InvalidParams(self.errors)
