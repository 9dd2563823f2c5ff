"""What ``tests/bench.py`` and ``tests/bench_peer.py`` both measure with: the private stack they
run on, percentiles, CPU seconds of a process tree, sockets opened in batches, logged-in sessions
for N jobs, and a job's frames on a socket."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import psutil

from proj.localredis import start_embedded
from tests.integration.stack import HttpSession, Stack, build_stack
from tests.integration.wsclient import FINAL, JobsClient

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


async def job_frames(client: JobsClient, job_id: str, timeout: float) -> AsyncIterator[tuple[dict[str, Any], float]]:
    """The job object of every frame of ``job_id`` on ``client``, with when it arrived
    (``time.time()``), until the final one (yielded too); raises ``TimeoutError`` when
    ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        frame = await client.recv(max(0.01, deadline - time.monotonic()))
        now = time.time()
        job: dict[str, Any] = frame.get("job") or {}
        if job.get("id") == job_id:
            yield job, now
            if job["state"] in FINAL:
                return


def run_on_private_stack(
    main: Callable[[Stack, int], Coroutine[Any, Any, None]], extra_env: dict[str, str] | None = None
) -> None:
    """``main(stack, redis_pid)`` on every Procfile process (``extra_env`` overrides) with a
    ``redis-server`` of its own, process ``redis_pid``: its commands and CPU are this stack's only.
    Both are stopped after."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj.settings")
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-secret-key")
    redis_handle = start_embedded()
    assert redis_handle.process is not None
    stack = build_stack(redis_handle.url, extra_env)
    try:
        asyncio.run(main(stack, redis_handle.process.pid))
    finally:
        stack.stop()
        redis_handle.stop()
