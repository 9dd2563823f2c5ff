"""``simulated``: the original demo's work, computed from the clock.

Progress rises by ``step`` percent every ``interval_ms`` milliseconds from the moment the
job started, until 100; with ``fail_at`` the job fails when progress reaches that percent.
There is no work task: the poll chain reads the clock, which is exactly what the original
"delay server" demo did with its delayed messages, and costs no worker slot however many
simulated jobs run at once.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import TYPE_CHECKING, Any

from django.conf import settings
from pydantic import Field

from tasks_app.kinds.base import JobKind, Progress, Reading, StrictParams
from tasks_app.kinds.registry import register

if TYPE_CHECKING:
    from tasks_app.models import Job

DEFAULT_STEP = 3
DEFAULT_INTERVAL_MS = 200
TOTAL = 100
#: Polls land this long after a step boundary, so a step is never read just before it happens.
BOUNDARY_MARGIN_MS = 5


class SimulatedParams(StrictParams):
    """Parameters: ``step`` percent per interval, ``interval_ms`` milliseconds, optional
    ``fail_at`` percent at which the job fails."""

    step: int = Field(DEFAULT_STEP, ge=1, le=100, description="Percent added every interval.")
    interval_ms: int = Field(DEFAULT_INTERVAL_MS, ge=50, le=10_000, description="Milliseconds between steps.")
    fail_at: int | None = Field(None, ge=1, le=100, description="Fail when progress reaches this percent.")


class SimulatedKind(JobKind):
    """Progress ``min(100, step * floor(elapsed / interval))`` percent; fails at ``fail_at``."""

    name = "simulated"
    title = "Simulated job"
    params_model = SimulatedParams

    def summary(self, params: dict[str, Any]) -> str:
        """``"step 3% every 200 ms"``, with ``", fails at 40%"`` when ``fail_at`` is set."""
        text = f"step {params['step']:,}% every {params['interval_ms']:,} ms"
        fail_at = params.get("fail_at")
        return text if fail_at is None else f"{text}, fails at {fail_at:,}%"

    def _steps_done(self, job: Job, now: dt.datetime) -> int:
        assert job.started_at is not None, "a running job has started_at"
        elapsed_ms = max(0.0, (now - job.started_at).total_seconds() * 1000)
        return int(elapsed_ms // job.params["interval_ms"])

    def read(self, job: Job, now: dt.datetime, observation: Any = None) -> Reading:
        """Progress at ``now``; succeeded at 100, failed once ``fail_at`` is reached."""
        step: int = job.params["step"]
        steps_needed = math.ceil(TOTAL / step)
        done = self._steps_done(job, now)
        current = min(TOTAL, done * step)
        fail_at = job.params.get("fail_at")
        if fail_at is not None and current >= fail_at:
            return Reading(
                progress=Progress(fail_at, TOTAL, f"failed at {fail_at}%"),
                failed=True,
                error=f"simulated failure at {fail_at}% (fail_at={fail_at})",
            )
        message = f"step {min(done, steps_needed)} of {steps_needed}"
        progress = Progress(current, TOTAL, message)
        if current >= TOTAL:
            elapsed_ms = round(done * job.params["interval_ms"])
            return Reading(
                progress=progress,
                succeeded=True,
                result={"steps": steps_needed, "step": step, "simulated_ms": elapsed_ms},
            )
        return Reading(progress=progress)

    def next_poll_in_ms(self, job: Job, now: dt.datetime) -> int:
        """Just after the next step boundary, but never sooner than the poll interval."""
        floor = int(settings.PROGRESS_POLL_INTERVAL_MS)
        interval: int = job.params["interval_ms"]
        if interval < floor:
            return floor
        assert job.started_at is not None
        elapsed_ms = (now - job.started_at).total_seconds() * 1000
        until_next = interval - (elapsed_ms % interval)
        return max(1, math.ceil(until_next) + BOUNDARY_MARGIN_MS)


KIND = register(SimulatedKind())
