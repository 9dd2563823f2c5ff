"""Progress recorded by work running inside a Celery task, read by the poll subtasks.

The work calls :meth:`ProgressRecorder.set_progress` (the call shape of celery-progress's
``ProgressRecorder.set_progress(current, total, description)``) or
:meth:`ProgressRecorder.increment_progress` as often as it likes; the
recorder writes to the shared ``progress`` cache (Redis) at most once every
``min_interval_ms``, so the cost is bounded however tight the loop. The poll chain reads
the last write with :func:`read_recorded_progress` and relays it when it changed.

Cancellation is cooperative: :func:`request_cancel` sets a flag that the recorder checks on
each write; ``set_progress`` then raises :class:`JobCancelled`, which ends the work task
cleanly.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from django.core.cache import BaseCache, caches

from tasks_app.models import PROGRESS_MESSAGE_MAX_CHARS

#: Alias of the Django cache shared by every process (Redis in every real deployment).
CACHE_ALIAS: Final = "progress"
#: Default minimum time between two writes of one recorder, milliseconds.
DEFAULT_MIN_INTERVAL_MS: Final = 100
#: Recorded progress expires after this many seconds without a write.
TTL_S: Final = 24 * 3600


@dataclass(frozen=True)
class Progress:
    """A progress reading: ``current`` of ``total`` units (``total`` None when unknown)."""

    current: int
    total: int | None
    message: str = ""


class JobCancelled(Exception):
    """Raised from ``set_progress`` once the job's cancellation was requested."""


def _cache() -> BaseCache:
    return caches[CACHE_ALIAS]


def _progress_key(job_id: uuid.UUID | str) -> str:
    return f"job:{uuid.UUID(str(job_id)).hex}:progress"


def _cancel_key(job_id: uuid.UUID | str) -> str:
    return f"job:{uuid.UUID(str(job_id)).hex}:cancel"


class ProgressRecorder:
    """Records one job's progress from the task doing its work (public API).

    Arguments: ``job_id`` (UUID or str); ``min_interval_ms`` the least time between two
    writes to the shared cache, milliseconds (the first call, and a call that reaches
    ``current >= total``, always write). Calls in between only update the object, so a loop
    may call :meth:`set_progress` millions of times: it costs at most one cache write and one
    cancellation check per ``min_interval_ms``. ``writes`` counts the writes made.

    Cancellation is cooperative: once the job's cancellation was asked, :attr:`cancelled`
    turns True and the next write raises :class:`JobCancelled`.
    """

    def __init__(
        self,
        job_id: uuid.UUID | str,
        *,
        min_interval_ms: int = DEFAULT_MIN_INTERVAL_MS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.job_id = str(job_id)
        self.min_interval_s = min_interval_ms / 1000
        self.clock = clock
        self.writes = 0
        self.current = 0
        self.total: int | None = None
        self.message = ""
        self._last_write: float | None = None
        self._last_cancel_check: float | None = None
        self._cancelled = False

    @property
    def cancelled(self) -> bool:
        """True once the job's cancellation was asked. Reads the cache at most once per
        ``min_interval_ms`` (and on every write), so a loop may test it on every turn."""
        if self._cancelled:
            return True
        now = self.clock()
        if self._last_cancel_check is None or now - self._last_cancel_check >= self.min_interval_s:
            self._check_cancel(now)
        return self._cancelled

    def _check_cancel(self, now: float) -> None:
        self._last_cancel_check = now
        self._cancelled = bool(_cache().get(_cancel_key(self.job_id)))

    def set_progress(self, current: int, total: int | None, message: str = "") -> None:
        """Record ``current`` of ``total`` units (``total`` None when unknown), with a short
        ``message`` (cut at 200 characters).

        Raises :class:`JobCancelled` (on a write) once the job's cancellation was asked.
        """
        self.current, self.total, self.message = int(current), total, message
        now = self.clock()
        due = (
            self._last_write is None
            or now - self._last_write >= self.min_interval_s
            or (total is not None and current >= total)
        )
        if due:
            self.flush(now)

    def increment_progress(self, by: int = 1, message: str = "") -> None:
        """Add ``by`` units to the current progress (the total stays what the last
        :meth:`set_progress` said); ``message`` replaces the message when not empty.

        Raises :class:`JobCancelled` like :meth:`set_progress`.
        """
        self.set_progress(self.current + by, self.total, message or self.message)

    def flush(self, now: float | None = None) -> None:
        """Write the latest progress now, whatever the interval; raises :class:`JobCancelled`
        once the job's cancellation was asked."""
        self._last_write = self.clock() if now is None else now
        self.writes += 1
        value: dict[str, Any] = {
            "current": self.current,
            "total": self.total,
            "message": self.message[:PROGRESS_MESSAGE_MAX_CHARS],
        }
        _cache().set(_progress_key(self.job_id), value, TTL_S)
        self._check_cancel(self._last_write)
        if self._cancelled:
            raise JobCancelled(self.job_id)

    @property
    def progress(self) -> Progress:
        """The latest progress given to this recorder (written or not)."""
        return Progress(self.current, self.total, self.message[:PROGRESS_MESSAGE_MAX_CHARS])


def read_recorded_progress(job_id: uuid.UUID | str) -> Progress | None:
    """The last progress a recorder wrote for the job, or None when nothing was recorded."""
    value = _cache().get(_progress_key(job_id))
    if not value:
        return None
    return Progress(int(value["current"]), value["total"], str(value.get("message", "")))


def request_cancel(job_id: uuid.UUID | str) -> None:
    """Tell the job's recorder to raise :class:`JobCancelled` on its next write."""
    _cache().set(_cancel_key(job_id), 1, TTL_S)


def clear_recorded(job_id: uuid.UUID | str) -> None:
    """Forget what was recorded for a job that reached its final state."""
    _cache().delete_many([_progress_key(job_id), _cancel_key(job_id)])
