"""Poll ticks: one countdown task polls every job that is due, instead of one task per poll.

A chain's next poll is a time on its job row (``Job.poll_due_at``), written in the poll's
transaction. Once that commits, :func:`arm` makes sure a ``poll_tick`` task is on its way
for the first tick at or after that time: ticks sit on a grid of ``PROGRESS_TICK_MS``
milliseconds (times since the Unix epoch that are multiples of it), and each process sends
the task of a tick once (a set of the ticks it armed), with ``countdown`` to the tick's
time. The tick (``tasks_app.polling.job_poll_tick``) selects every job due by its time and polls
them in batches, so 500 jobs at 5 polls a second cost a few dozen Celery tasks a second,
not 2,500.

Why a tick always sees the jobs armed for it: :func:`arm` runs after the commit and picks a
tick at least ``ARM_MARGIN_MS`` ahead of the clock, and a countdown task runs no sooner than
its time, so the tick's select comes after the commit. Two processes may both send a tick
(each dedupes only its own sends): the second finds nothing due and does nothing; a job is
claimed under its row lock by its ``poll_seq``, so it is polled once. A tick lost with its
worker or with Redis is repaired like any stopped chain: the supervisor finds the jobs'
polls overdue (DESIGN.md "Supervision and recovery").
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
import time
from typing import Final

from celery import current_app
from django.conf import settings

logger = logging.getLogger(__name__)

#: Celery task name of the tick (``tasks_app.tasks.poll_tick``; queue ``progress``).
TASK_POLL_TICK: Final = "tasks_app.poll_tick"
#: The least time between arming a tick and its time, milliseconds: covers a timer that
#: fires a little early and the time between the commit and the send.
ARM_MARGIN_MS: Final = 5
#: Ticks this many milliseconds in the past are forgotten by the set of armed ticks.
FORGET_AFTER_MS: Final = 60_000

_lock = threading.Lock()
_armed: set[int] = set()
_forgotten_before_ms = 0


def tick_ms(due: dt.datetime, *, now_ms: float | None = None) -> int:
    """The tick that serves a poll due at ``due`` (aware datetime): milliseconds since the
    Unix epoch, the first multiple of ``PROGRESS_TICK_MS`` at or after both ``due`` and
    ``now_ms + ARM_MARGIN_MS`` (``now_ms`` defaults to the clock)."""
    step = int(settings.PROGRESS_TICK_MS)
    now_ms = time.time() * 1000 if now_ms is None else now_ms
    at_ms = max(due.timestamp() * 1000, now_ms + ARM_MARGIN_MS)
    return math.ceil(at_ms / step) * step


def tick_time(tick: int) -> dt.datetime:
    """The aware UTC datetime of tick ``tick`` (milliseconds since the Unix epoch)."""
    return dt.datetime.fromtimestamp(tick / 1000, tz=dt.UTC)


def arm(due: dt.datetime) -> None:
    """Make sure a ``poll_tick`` task will run for a poll due at ``due``; call after the
    commit that wrote the job's ``poll_due_at``. Sends at most one task per tick and
    process. A send that fails (the broker is away) is logged, not raised, and the tick is
    not marked armed: the next poll due then sends it, or the supervisor repairs the chain."""
    now_ms = time.time() * 1000
    tick = tick_ms(due, now_ms=now_ms)
    with _lock:
        if tick in _armed:
            return
        _armed.add(tick)
        _forget_old(now_ms)
    try:
        current_app.send_task(
            TASK_POLL_TICK, args=[tick], countdown=max(0.0, (tick - now_ms) / 1000), ignore_result=True
        )
    except Exception as exc:
        with _lock:
            _armed.discard(tick)
        logger.warning("could not send poll tick %s (%s); the supervisor re-arms its jobs", tick, exc)


def _forget_old(now_ms: float) -> None:
    """Drop armed ticks older than ``FORGET_AFTER_MS`` (at most once a ``FORGET_AFTER_MS``)."""
    global _forgotten_before_ms
    cutoff = int(now_ms) - FORGET_AFTER_MS
    if cutoff - _forgotten_before_ms < FORGET_AFTER_MS:
        return
    _armed.difference_update({t for t in _armed if t < cutoff})
    _forgotten_before_ms = cutoff


def forget_armed() -> None:
    """Forget every tick this process armed (tests that empty the broker between cases)."""
    with _lock:
        _armed.clear()
