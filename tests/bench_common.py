"""What ``tests/bench.py`` and ``tests/bench_peer.py`` both measure with: percentiles, CPU
seconds of a process tree, sockets opened in batches, and logged-in sessions for N jobs."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable
from typing import TypeVar

import psutil

from tests.integration.stack import HttpSession, Stack

T = TypeVar("T")

#: Active jobs one user may have (``JOBS_MAX_ACTIVE_PER_USER``): a run of more jobs spreads
#: them over enough users.
JOBS_PER_USER = 20
BENCH_USER_PASSWORD = "bench-user-password"


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``values``, nearest rank; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its descendants so far."""
    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


async def open_in_batches(open_one: Callable[[], Awaitable[T]], n: int) -> list[T]:
    """``n`` sockets from ``open_one``, opened 100 at a time."""
    opened: list[T] = []
    while len(opened) < n:
        opened += await asyncio.gather(*(open_one() for _ in range(min(100, n - len(opened)))))
    return opened


def job_sessions(stack: Stack, jobs: int) -> list[HttpSession]:
    """Logged-in sessions enough for ``jobs`` active jobs, ``JOBS_PER_USER`` each: users
    ``bench0``, ``bench1``, ... (created or updated); job ``i`` belongs to session
    ``i // JOBS_PER_USER``."""
    sessions = []
    for i in range(max(1, math.ceil(jobs / JOBS_PER_USER))):
        name = f"bench{i}"
        stack.manage("ensure_demo_user", extra_env={"DEMO_USERNAME": name, "DEMO_PASSWORD": BENCH_USER_PASSWORD})
        sessions.append(HttpSession(stack).login(name, BENCH_USER_PASSWORD))
    return sessions
