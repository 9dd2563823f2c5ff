"""The one module that knows group names and event shapes, and sends into the channel layer.

Producers (services running in the web process or in Celery workers) call
:func:`send_job_event`; consumers join :func:`job_group` and receive events of type
``EVENT_JOB`` (handled by their ``job_event`` method).

Sending from synchronous code
-----------------------------
``async_to_sync(channel_layer.group_send)`` is the documented way to send from sync code
(Channels docs, "Using Outside Of Consumers"). In a Celery worker there is no outer loop:
asgiref then runs each call in a *new* event loop (``asyncio.run``), and channels-redis keeps
its Redis connection pools per event loop, so every call would open and close a Redis
connection (django/channels_redis#125). Our channel layer therefore also sends from
synchronous code itself (``realtime.layers.ResilientPubSubChannelLayer.group_send_blocking``:
the same ``PUBLISH`` on redis-py's synchronous client, one pooled connection per process, a
tick's batch in one pipeline), and :func:`send_job_events` uses it whenever the layer has it;
other layers (the in-memory one of unit tests) get ``async_to_sync(group_send)``.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, Final

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from realtime import metrics
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


def send_job_event(job: dict[str, Any]) -> None:
    """Send a job snapshot to every socket in the job's group; never raises.

    ``job`` is the protocol's job object (``tasks_app.selectors.job_snapshot``). A failed
    send is logged and dropped: the database row is the truth and a client that
    resubscribes gets the snapshot (DESIGN.md "Celery rules").
    """
    send_job_events([job])


def send_job_events(jobs: list[dict[str, Any]]) -> None:
    """Send job snapshots, each to its job's group, in order, in one hand-over to the channel
    layer (a tick's batch: one round trip to Redis); never raises. A failed send is logged and
    dropped, as in :func:`send_job_event`, and its events counted in
    ``jobs_events_publish_failed_total`` (``realtime.metrics.PUBLISH_FAILED``)."""
    layer = get_channel_layer()
    if layer is None:
        logger.warning("no channel layer configured; %s job events not sent", len(jobs))
        return
    blocking = getattr(layer, "group_send_blocking", None)
    if blocking is None:
        async_to_sync(_send_all)(layer, jobs)
        return
    try:
        blocking([(job_group(job["id"]), job_event(job)) for job in jobs])
    except REDIS_ERRORS as exc:
        # Counted whole: the layer says none or some of a failed batch went out.
        metrics.PUBLISH_FAILED.inc(len(jobs))
        logger.warning("publishing %s job events failed (%s); clients catch up from the snapshot", len(jobs), exc)
    except Exception:
        metrics.PUBLISH_FAILED.inc(len(jobs))
        logger.exception("publishing %s job events failed; clients catch up from the snapshot", len(jobs))


async def _send_all(layer: Any, jobs: list[dict[str, Any]]) -> None:
    for job in jobs:
        group = job_group(job["id"])
        try:
            await layer.group_send(group, job_event(job))
        except REDIS_ERRORS as exc:
            metrics.PUBLISH_FAILED.inc()
            logger.warning("group_send to %s failed (%s); clients catch up from the snapshot", group, exc)
        except Exception:
            metrics.PUBLISH_FAILED.inc()
            logger.exception("group_send to %s failed; clients catch up from the snapshot", group)
