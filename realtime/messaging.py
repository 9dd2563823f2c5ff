"""The one module that knows group names and event shapes, and sends into the channel layer.

Producers (services running in the web process or in Celery workers) call
:func:`send_job_event`; consumers join :func:`job_group` and receive events of type
``EVENT_JOB`` (handled by their ``job_event`` method).

Sending from synchronous code
-----------------------------
``async_to_sync(channel_layer.group_send)`` is the documented way to send from sync code
(Channels docs, "Using Outside Of Consumers"), and it is what we use inside the web process,
where asgiref runs it on the server's own event loop. In a Celery worker there is no outer
loop: asgiref then runs each call in a *new* event loop (``asyncio.run``), and
channels-redis keeps its Redis connection pools per event loop
(``RedisChannelLayer._layers[loop]``), so every call would open and close a Redis
connection (django/channels_redis#125). A worker therefore calls :func:`use_worker_loop`
once at start (``worker_process_init``), and from then on every send runs on one
long-lived event loop in a daemon thread of that process: one pool per process, reused by
every poll.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import uuid
from concurrent.futures import Future
from typing import Any, Final

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from realtime.layers import REDIS_ERRORS

logger = logging.getLogger(__name__)

#: Event type consumers handle (``job.event`` → ``job_event``).
EVENT_JOB: Final = "job.event"

#: Frame types of protocol v1 that carry a job.
FRAME_ACCEPTED: Final = "job.accepted"
FRAME_SNAPSHOT: Final = "job.snapshot"
FRAME_PROGRESS: Final = "job.progress"
FRAME_SUCCEEDED: Final = "job.succeeded"
FRAME_FAILED: Final = "job.failed"
FRAME_CANCELLED: Final = "job.cancelled"

_FRAME_FOR_FINAL_STATE: Final = {
    "succeeded": FRAME_SUCCEEDED,
    "failed": FRAME_FAILED,
    "cancelled": FRAME_CANCELLED,
}

#: Seconds a worker waits for one group_send before giving up (the row stays the truth).
SEND_TIMEOUT_S: Final = 5.0


def job_group(job_id: uuid.UUID | str) -> str:
    """Name of the channel-layer group of one job: ``"job.<32 hex digits>"``.

    Group names must be ASCII letters, digits, hyphens, periods or underscores and
    shorter than 100 characters (Channels' ``BaseChannelLayer.require_valid_group_name``).
    """
    return f"job.{uuid.UUID(str(job_id)).hex}"


def frame_type_for(state: str) -> str:
    """The live frame type for a job in ``state``: the final frames, or ``job.progress``."""
    return _FRAME_FOR_FINAL_STATE.get(state, FRAME_PROGRESS)


def job_event(job: dict[str, Any]) -> dict[str, Any]:
    """The channel-layer event that carries one job snapshot (msgpack-serialisable)."""
    return {"type": EVENT_JOB, "frame": frame_type_for(job["state"]), "job": job}


class _LoopThread:
    """One asyncio event loop running forever in a daemon thread of this process."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="channel-layer-loop", daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)


_worker_loop: _LoopThread | None = None
_worker_loop_lock = threading.Lock()
_use_worker_loop = False


def use_worker_loop() -> None:
    """Send through one long-lived event loop per process from now on (Celery workers).

    Safe to call more than once and across ``fork``: a child process gets its own loop.
    """
    global _use_worker_loop
    _use_worker_loop = True


def _get_worker_loop() -> _LoopThread:
    global _worker_loop
    with _worker_loop_lock:
        if _worker_loop is None or _worker_loop.pid != os.getpid():
            _worker_loop = _LoopThread()
        return _worker_loop


def send_job_event(job: dict[str, Any]) -> None:
    """Send a job snapshot to every socket in the job's group; never raises.

    ``job`` is the protocol's job object (``tasks_app.selectors.job_snapshot``). A failed
    send is logged and dropped: the database row is the truth and a client that
    resubscribes gets the snapshot (DESIGN.md "Celery rules").
    """
    send_job_events([job])


def send_job_events(jobs: list[dict[str, Any]]) -> None:
    """Send job snapshots, each to its job's group, in order, in one hand-over to the channel
    layer's event loop (a tick's batch); never raises. A failed send is logged and dropped,
    as in :func:`send_job_event`; the sends after it are still made."""
    layer = get_channel_layer()
    if layer is None:
        logger.warning("no channel layer configured; %s job events not sent", len(jobs))
        return
    if _use_worker_loop:
        _get_worker_loop().run(_send_all(layer, jobs), SEND_TIMEOUT_S * max(1, len(jobs) // 100 + 1))
    else:
        async_to_sync(_send_all)(layer, jobs)


async def _send_all(layer: Any, jobs: list[dict[str, Any]]) -> None:
    for job in jobs:
        group = job_group(job["id"])
        try:
            await layer.group_send(group, job_event(job))
        except REDIS_ERRORS as exc:
            logger.warning("group_send to %s failed (%s); clients catch up from the snapshot", group, exc)
        except Exception:
            logger.exception("group_send to %s failed; clients catch up from the snapshot", group)
