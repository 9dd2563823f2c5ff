"""Progress recorded by work running inside a Celery task, read by the poll subtasks.

The work calls :meth:`ProgressRecorder.set_progress` (the call shape of celery-progress's
``ProgressRecorder.set_progress(current, total, description)``) or
:meth:`ProgressRecorder.increment_progress` as often as it likes; the
recorder writes to the shared ``progress`` cache (Redis) at most once every
``min_interval_ms``, so the cost is bounded however tight the loop. The poll chain reads
the last write with :func:`read_recorded_progress` and relays it when it changed.

Cancellation is cooperative: :func:`request_cancel` sets a flag that the recorder checks on
each write; ``set_progress`` then raises :class:`JobCancelled`, which ends the work task
cleanly. The same happens once the work's attempt was superseded (its worker was thought
lost and the job runs again): :class:`WorkSuperseded`, a :class:`JobCancelled`.

Recorded progress is kept per attempt (``job:<hex>:<attempt>:progress``), so a superseded
copy of the work can never be read as the job's progress. The cache is a convenience, not
the truth: while Redis is away a write is skipped (logged once), and the work goes on.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from django.core.cache import BaseCache, caches
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tasks_app.models import PROGRESS_MESSAGE_MAX_CHARS

logger = logging.getLogger(__name__)

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


#: What a Redis outage raises from the cache; the recorder skips a write then.
REDIS_ERRORS: Final = (RedisConnectionError, RedisTimeoutError, OSError)


class JobCancelled(Exception):
    """Raised from ``set_progress`` once the job's cancellation was requested."""


class WorkSuperseded(JobCancelled):
    """Raised from ``set_progress`` once this run of the work is no longer the job's current
    attempt (the job ended, or runs again elsewhere): nothing it does counts any more."""


def _cache() -> BaseCache:
    return caches[CACHE_ALIAS]


def _progress_key(job_id: uuid.UUID | str, attempt: int, part: str = "") -> str:
    run = f"{attempt}.{part}" if part else str(attempt)
    return f"job:{uuid.UUID(str(job_id)).hex}:{run}:progress"


def _cancel_key(job_id: uuid.UUID | str) -> str:
    return f"job:{uuid.UUID(str(job_id)).hex}:cancel"


class ProgressRecorder:
    """Records one job's progress from the task doing its work (public API).

    Arguments: ``job_id`` (UUID or str); ``attempt`` the run of the work it records for
    (``Job.attempt``; 1 for the first); ``min_interval_ms`` the least time between two
    writes to the shared cache, milliseconds (the first call, and a call that reaches
    ``current >= total``, always write); ``superseded`` a callable that turns True once this
    run no longer counts (the work task's heartbeat, ``tasks_app.heartbeat``); ``part`` names
    one item's run of a split job (``"<index>.<item attempt>"``, ``tasks_app.kinds.split_kind``;
    empty for the job's own work). Calls in
    between only update the object, so a loop may call :meth:`set_progress` millions of
    times: it costs at most one cache write and one cancellation check per
    ``min_interval_ms``. ``writes`` counts the writes made.

    Cancellation is cooperative: once the job's cancellation was asked, :attr:`cancelled`
    turns True and the next write raises :class:`JobCancelled` (:class:`WorkSuperseded`
    once ``superseded()`` is True).
    """

    def __init__(
        self,
        job_id: uuid.UUID | str,
        *,
        attempt: int = 1,
        min_interval_ms: int = DEFAULT_MIN_INTERVAL_MS,
        clock: Callable[[], float] = time.monotonic,
        superseded: Callable[[], bool] = lambda: False,
        part: str = "",
    ) -> None:
        self.job_id = str(job_id)
        self.attempt = attempt
        self.part = part
        self.superseded = superseded
        self._cache_down = False
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
        if self.superseded():
            self._cancelled = True
            return
        try:
            self._cancelled = bool(_cache().get(_cancel_key(self.job_id)))
        except REDIS_ERRORS as exc:
            self._note_cache_down(exc)

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
        try:
            _cache().set(_progress_key(self.job_id, self.attempt, self.part), value, TTL_S)
        except REDIS_ERRORS as exc:
            self._note_cache_down(exc)
        else:
            if self._cache_down:
                logger.info("job %s: progress cache answers again", self.job_id)
                self._cache_down = False
        self._check_cancel(self._last_write)
        if self._cancelled:
            raise WorkSuperseded(self.job_id) if self.superseded() else JobCancelled(self.job_id)

    def _note_cache_down(self, exc: BaseException) -> None:
        if not self._cache_down:
            logger.warning("job %s: progress cache unreachable (%s); the work goes on", self.job_id, exc)
            self._cache_down = True

    @property
    def progress(self) -> Progress:
        """The latest progress given to this recorder (written or not)."""
        return Progress(self.current, self.total, self.message[:PROGRESS_MESSAGE_MAX_CHARS])


def read_recorded_progress(job_id: uuid.UUID | str, attempt: int) -> Progress | None:
    """The last progress a recorder of the job's ``attempt`` wrote, or None when nothing was
    recorded. Raises the cache's connection errors (a poll retries)."""
    value = _cache().get(_progress_key(job_id, attempt))
    return _as_progress(value) if value else None


def _as_progress(value: dict[str, Any]) -> Progress:
    return Progress(int(value["current"]), value["total"], str(value.get("message", "")))


def read_recorded_many(keys: list[tuple[uuid.UUID, int]]) -> dict[tuple[uuid.UUID, int], Progress]:
    """What the recorders of many ``(job id, attempt)`` pairs wrote last, in one cache read
    (``get_many``: one ``MGET``); pairs that recorded nothing are missing from the result.
    Raises the cache's connection errors (a poll retries)."""
    names = {_progress_key(job_id, attempt): (job_id, attempt) for job_id, attempt in keys}
    found = _cache().get_many(list(names)) if names else {}
    return {names[key]: _as_progress(value) for key, value in found.items() if value}


def read_recorded_parts(job_id: uuid.UUID | str, attempt: int, parts: list[str]) -> dict[str, Progress]:
    """What the recorders of items ``parts`` (``"<index>.<item attempt>"``) of the job's
    ``attempt`` wrote last, in one ``MGET``; parts that recorded nothing are missing.
    Raises the cache's connection errors (a poll retries)."""
    names = {_progress_key(job_id, attempt, part): part for part in parts}
    found = _cache().get_many(list(names)) if names else {}
    return {names[key]: _as_progress(value) for key, value in found.items() if value}


def request_cancel(job_id: uuid.UUID | str) -> None:
    """Tell the job's recorder to raise :class:`JobCancelled` on its next write."""
    _cache().set(_cancel_key(job_id), 1, TTL_S)


def clear_recorded(job_id: uuid.UUID | str, attempts: int) -> None:
    """Forget what was recorded for a job that reached its final state (every attempt up to
    ``attempts``); never raises (housekeeping removes what a Redis outage left)."""
    keys = [_progress_key(job_id, n) for n in range(1, attempts + 1)] + [_cancel_key(job_id)]
    try:
        _cache().delete_many(keys)
    except REDIS_ERRORS as exc:
        logger.warning("job %s: recorded progress not cleared (%s); housekeeping will", job_id, exc)


def clear_recorded_parts(job_id: uuid.UUID | str, attempt: int, parts: list[str]) -> None:
    """Forget what the items ``parts`` (``"<index>.<item attempt>"``) of a split job's
    ``attempt`` recorded, once the job is final; never raises (the keys expire after
    ``TTL_S`` anyway)."""
    try:
        _cache().delete_many([_progress_key(job_id, attempt, part) for part in parts])
    except REDIS_ERRORS as exc:
        logger.warning("job %s: recorded progress of its items not cleared (%s)", job_id, exc)


def recorded_job_ids() -> set[uuid.UUID]:
    """Ids of every job that has recorded progress or a cancel flag in the cache (SCAN;
    for housekeeping)."""
    cache = _cache()
    client = cache._cache.get_client()  # type: ignore[attr-defined]  # django.core.cache.backends.redis
    pattern = cache.make_key("job:*")
    ids = set()
    for raw in client.scan_iter(match=pattern, count=1000):
        key = raw.decode() if isinstance(raw, bytes) else str(raw)
        try:
            ids.add(uuid.UUID(key.split("job:", 1)[1].split(":", 1)[0]))
        except (IndexError, ValueError):
            continue
    return ids
