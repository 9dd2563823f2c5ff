"""The demo service's jobs: what each was asked to be, its state at a clock time, the store in memory.

A job does no work: its state is computed from the time it was created, read from an injected
clock, so there are no background tasks and unit tests drive it with a fake clock. Part of the
separate ``proj.demo_service`` program: imports nothing from ``tasks_app`` or ``realtime``.
"""

from __future__ import annotations

import math
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from proj.demo_service.errors import IdempotencyConflict, JobNotFound, NotCancellable

__all__ = [
    "CANCELLED",
    "DEFAULT_DURATION_S",
    "FAILED",
    "FAIL_ERROR",
    "MAX_JOBS",
    "MAX_SECONDS",
    "RUNNING",
    "SUCCEEDED",
    "TICKS_PER_SECOND",
    "Clock",
    "DemoJob",
    "JobSpec",
    "JobStore",
]

#: A clock: seconds as a float, never going backwards (``time.monotonic``).
Clock = Callable[[], float]

MAX_JOBS: Final = 10_000
MAX_SECONDS: Final = 3600.0
DEFAULT_DURATION_S: Final = 10.0
TICKS_PER_SECOND: Final = 10

RUNNING: Final = "running"
SUCCEEDED: Final = "succeeded"
FAILED: Final = "failed"
CANCELLED: Final = "cancelled"
FAIL_ERROR: Final = "demo failure requested (fail=true)"

# Floor of elapsed tenths, forgiving float noise (100.3 - 100.0 is 0.2999…).
_TICK_EPSILON: Final = 1e-6


@dataclass(frozen=True)
class JobSpec:
    """What a job was asked to be: seconds to run, whether to fail, seconds of 503s."""

    duration_s: float = DEFAULT_DURATION_S
    fail: bool = False
    unavailable_s: float = 0.0

    @property
    def total_ticks(self) -> int:
        return max(1, round(self.duration_s * TICKS_PER_SECOND))


@dataclass
class DemoJob:
    """One job: its spec and ``created_at`` (clock seconds); ``cancelled_at`` once cancelled."""

    id: str
    spec: JobSpec
    created_at: float
    idempotency_key: str | None = None
    cancelled_at: float | None = None
    deletes: int = 0

    def state(self, now: float) -> str:
        """``running``, ``succeeded``, ``failed`` or ``cancelled`` at clock time ``now``."""
        if self.cancelled_at is not None:
            return CANCELLED
        if now - self.created_at >= self.spec.duration_s:
            return FAILED if self.spec.fail else SUCCEEDED
        return RUNNING

    def unavailable_for(self, now: float) -> float:
        """Seconds the status endpoint still answers 503 (0 when it answers)."""
        return max(0.0, self.created_at + self.spec.unavailable_s - now)

    def snapshot(self, now: float) -> dict[str, Any]:
        """The body of ``GET /jobs/{id}`` at clock time ``now`` (shape in the module docstring)."""
        state = self.state(now)
        spec = self.spec
        total = spec.total_ticks
        if state in (SUCCEEDED, FAILED):
            current, seconds = total, spec.duration_s
        else:
            until = self.cancelled_at if self.cancelled_at is not None else now
            elapsed = max(0.0, until - self.created_at)
            current = min(total, math.floor(elapsed * TICKS_PER_SECOND + _TICK_EPSILON))
            seconds = min(spec.duration_s, current / TICKS_PER_SECOND)
        return {
            "id": self.id,
            "state": state,
            "progress": {"current": current, "total": total, "message": f"{seconds:.1f} of {spec.duration_s:.1f} s"},
            "result": {"duration_s": spec.duration_s, "ticks": total} if state == SUCCEEDED else None,
            "error": FAIL_ERROR if state == FAILED else None,
            "deletes": self.deletes,
        }


class JobStore:
    """The jobs in memory, at most ``max_jobs`` of them (creating one more forgets the oldest)."""

    def __init__(self, *, clock: Clock, max_jobs: int = MAX_JOBS) -> None:
        assert max_jobs >= 1, "max_jobs must be at least 1"
        self.clock = clock
        self.max_jobs = max_jobs
        self._jobs: OrderedDict[str, DemoJob] = OrderedDict()
        self._by_key: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._jobs)

    def create(self, spec: JobSpec, *, idempotency_key: str | None = None) -> tuple[DemoJob, bool]:
        """Create a job; returns ``(job, created)``.

        With a key already used: ``(that job, False)`` if ``spec`` is the same, else raises
        :class:`IdempotencyConflict`.
        """
        if idempotency_key is not None and idempotency_key in self._by_key:
            existing = self._jobs[self._by_key[idempotency_key]]
            if existing.spec != spec:
                raise IdempotencyConflict("Idempotency-Key already used with another payload", id=existing.id)
            return existing, False
        job = DemoJob(id=uuid.uuid4().hex, spec=spec, created_at=self.clock(), idempotency_key=idempotency_key)
        self._jobs[job.id] = job
        if idempotency_key is not None:
            self._by_key[idempotency_key] = job.id
        while len(self._jobs) > self.max_jobs:
            _, dropped = self._jobs.popitem(last=False)
            if dropped.idempotency_key is not None:
                self._by_key.pop(dropped.idempotency_key, None)
        return job, True

    def get(self, job_id: str) -> DemoJob:
        """The job with this id; raises :class:`JobNotFound`."""
        job = self._jobs.get(job_id)
        if job is None:
            raise JobNotFound()
        return job

    def cancel(self, job_id: str) -> DemoJob:
        """Count the DELETE, then cancel the job if running; raises JobNotFound, NotCancellable."""
        job = self.get(job_id)
        job.deletes += 1
        now = self.clock()
        state = job.state(now)
        if state != RUNNING:
            raise NotCancellable(state)
        job.cancelled_at = now
        return job
