"""Progress recorded by work running inside a Celery task, read by the poll subtasks.

The work calls :meth:`ProgressRecorder.set_progress` (the call shape of celery-progress's
``ProgressRecorder.set_progress(current, total, description)``) as often as it likes; the
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
from typing import Any, Final

from django.core.cache import BaseCache, caches

from tasks_app.kinds.base import Progress
from tasks_app.models import PROGRESS_MESSAGE_MAX_CHARS

#: Alias of the Django cache shared by every process (Redis in every real deployment).
CACHE_ALIAS: Final = "progress"
#: Default minimum time between two writes of one recorder, milliseconds.
DEFAULT_MIN_INTERVAL_MS: Final = 100
#: Recorded progress expires after this many seconds without a write.
TTL_S: Final = 24 * 3600


class JobCancelled(Exception):
    """Raised from ``set_progress`` once the job's cancellation was requested."""


def _cache() -> BaseCache:
    return caches[CACHE_ALIAS]


def _progress_key(job_id: uuid.UUID | str) -> str:
    return f"job:{uuid.UUID(str(job_id)).hex}:progress"


def _cancel_key(job_id: uuid.UUID | str) -> str:
    return f"job:{uuid.UUID(str(job_id)).hex}:cancel"


class ProgressRecorder:
    """Records one job's progress from the task doing its work.

    Arguments: ``job_id`` (UUID or str); ``min_interval_ms`` the least time between two
    writes (the first call and any call reaching ``current == total`` always write).
    ``writes`` counts the writes made, for tests and benchmarks.
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
        self._last_write: float | None = None
        self._cancelled = False

    @property
    def cancelled(self) -> bool:
        """True once cancellation was requested (checked on every write, and here)."""
        if not self._cancelled:
            self._cancelled = bool(_cache().get(_cancel_key(self.job_id)))
        return self._cancelled

    def set_progress(self, current: int, total: int | None, message: str = "") -> None:
        """Record ``current`` of ``total`` units (``total`` None when unknown).

        Raises :class:`JobCancelled` when the job's cancellation was requested.
        """
        now = self.clock()
        due = (
            self._last_write is None
            or now - self._last_write >= self.min_interval_s
            or (total is not None and current >= total)
        )
        if not due:
            return
        self._last_write = now
        self.writes += 1
        value: dict[str, Any] = {
            "current": int(current),
            "total": total,
            "message": message[:PROGRESS_MESSAGE_MAX_CHARS],
        }
        cache = _cache()
        cache.set(_progress_key(self.job_id), value, TTL_S)
        if self.cancelled:
            raise JobCancelled(self.job_id)


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
