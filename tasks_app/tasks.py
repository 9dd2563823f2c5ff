"""Celery tasks: thin adapters that call services (DESIGN.md "The path of one job").

``run_job``, ``poll_tick``, ``poll_job``, ``supervise`` and ``housekeep`` run on queue ``progress``
(routes in ``celeryconfig``). The work tasks of job kinds are made by ``tasks_app.kinds.job_kind``
(importing ``tasks_app.kinds`` here registers them in the worker). Arguments are ids and
plain values only.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from celery import shared_task
from django.db import InterfaceError as DbInterfaceError
from django.db import OperationalError as DbOperationalError
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

from tasks_app import polling, services, supervisor, ticks

#: Celery task names of the supervisor's periodic tasks (schedule in ``celeryconfig``).
TASK_SUPERVISE: Final = "tasks_app.supervise"
TASK_HOUSEKEEP: Final = "tasks_app.housekeep"

logger = logging.getLogger(__name__)

#: Broker, cache or database hiccups (Redis restarting, SQLite busy, a dropped PostgreSQL
#: connection) are retried with exponential backoff, seconds: a poll that gave up would end
#: its chain. Every task is idempotent, so a retry is safe.
_RETRY: dict[str, Any] = {
    "autoretry_for": (OperationalError, ConnectionError, RedisError, DbOperationalError, DbInterfaceError),
    "retry_backoff": 0.5,
    "retry_backoff_max": 30,
    "retry_jitter": True,
    "max_retries": 10,
}


@shared_task(name=services.TASK_RUN_JOB, **_RETRY)
def run_job(job_id: str) -> None:
    """Start the job's work and its poll chain (``services.job_run``)."""
    services.job_run(job_id=job_id)


@shared_task(name=services.TASK_POLL_JOB, ignore_result=True, **_RETRY)
def poll_job(job_id: str, poll_seq: int) -> None:
    """One countdown poll of the job (``polling.job_poll``).

    Results are not stored: a job polls five times a second, and one result row per poll
    would cost a database write each and bury the admin's task list.
    """
    polling.job_poll(job_id=job_id, poll_seq=poll_seq)


@shared_task(name=ticks.TASK_POLL_TICK, ignore_result=True, **_RETRY)
def poll_tick(tick: int) -> list[str]:
    """Poll every job due by tick ``tick`` (milliseconds since the Unix epoch;
    ``polling.job_poll_tick``); returns the ids of the jobs it polled, which Flower shows
    as the task's result (the worker's task-succeeded event carries it,
    celery/worker/request.py:565, though no result is stored)."""
    return polling.job_poll_tick(tick=ticks.tick_time(tick))


@shared_task(name=TASK_SUPERVISE, ignore_result=True)
def supervise() -> dict[str, int]:
    """One supervisor pass (``tasks_app.supervisor.supervise``); sent by ``celery beat``."""
    return dict(supervisor.supervise())


@shared_task(name=TASK_HOUSEKEEP)
def housekeep() -> dict[str, int]:
    """One housekeeping pass (``tasks_app.supervisor.housekeep``); sent by ``celery beat``."""
    return dict(supervisor.housekeep())
