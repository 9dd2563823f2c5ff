"""Following jobs: the one place that knows "keep the highest ``seq``, drop the rest".

DESIGN.md "WebSocket protocol": ``seq`` grows by one with every saved change of a job; a
client keeps the highest it has seen per job and drops any frame with a lower one, so a
snapshot and live frames can arrive in any order without the display going backwards; after
a job's final frame nothing more of it is shown.

- :class:`JobFollower` holds that rule for a set of jobs. The WebSocket consumers
  (``realtime.consumers``) keep one per socket; :func:`watch_job` one for its job.
- :func:`watch_job` is a channel-layer client of its own (the terminal watcher, ``manage.py
  jobs watch``): it joins the job's group, reads the snapshot, takes live events, and reads
  the snapshot again after ``resync_after_s`` of silence (``group_send`` may drop events).
  A consumer never waits like that: it is told by the layer (``layer.reconnected``) instead.

The JavaScript twin is ``templates/static/jobs/follower.js`` (its ``store.js`` keeps the seqs).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Final

from channels.layers import BaseChannelLayer

from realtime import messaging
from tasks_app.jobobject import JobObject
from tasks_app.states import FINAL_STATES

#: Seconds without any event after which :func:`watch_job` re-reads the snapshot.
RESYNC_AFTER_S: Final = 3.0

#: Where a job object :func:`watch_job` passes on came from.
SOURCE_SNAPSHOT: Final = "snapshot"
SOURCE_EVENT: Final = "event"
SOURCE_RESYNC: Final = "resync"


class JobFollower:
    """The jobs one client follows and the highest ``seq`` it was given of each.

    Job objects are the protocol's (``tasks_app.jobobject.JobObject``) as dicts, the form
    frames and channel-layer events carry. Pure bookkeeping: joining groups is the caller's.
    """

    def __init__(self) -> None:
        self._seqs: dict[str, int] = {}

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._seqs

    def __iter__(self) -> Iterator[str]:
        """The followed job ids (a copy: safe to unfollow while iterating)."""
        return iter(list(self._seqs))

    def __len__(self) -> int:
        return len(self._seqs)

    def follow(self, job_id: str) -> bool:
        """Start following ``job_id`` (nothing given yet); False when already followed."""
        if job_id in self._seqs:
            return False
        self._seqs[job_id] = 0  # a job's seq starts at 1 (models.Job.seq)
        return True

    def unfollow(self, job_id: str) -> bool:
        """Stop following ``job_id``; False when it was not followed."""
        return self._seqs.pop(job_id, None) is not None

    def note(self, job: dict[str, Any]) -> None:
        """Record that ``job`` was given to the client whatever its ``seq`` (a direct answer:
        a snapshot is always sent), so later frames must be newer than it."""
        job_id = job["id"]
        if job_id in self._seqs:
            self._seqs[job_id] = max(self._seqs[job_id], job["seq"])

    def offer(self, job: dict[str, Any]) -> bool:
        """True when ``job`` moves a followed job on (its ``seq`` is higher than any given):
        then it is recorded and the caller passes it on. False for an unfollowed job or a
        stale or repeated frame, which the caller drops."""
        job_id = job["id"]
        seen = self._seqs.get(job_id)
        if seen is None or job["seq"] <= seen:
            return False
        self._seqs[job_id] = job["seq"]
        return True

    @staticmethod
    def is_final(job: dict[str, Any]) -> bool:
        """True for a job object in a final state: nothing of that job follows it."""
        return job["state"] in FINAL_STATES


def job_of_event(event: dict[str, Any]) -> dict[str, Any] | None:
    """The job object of a ``job.event`` (``realtime.messaging.job_event``); None for others."""
    job = event.get("job")
    return job if event.get("type") == messaging.EVENT_JOB and isinstance(job, dict) else None


async def watch_job(
    *,
    layer: BaseChannelLayer,
    job_id: str,
    read_snapshot: Callable[[], Awaitable[dict[str, Any]]],
    on_update: Callable[[JobObject, str], None],
    resync_after_s: float = RESYNC_AFTER_S,
) -> JobObject:
    """Follow one job through ``layer`` until it is final; return its final job object.

    ``read_snapshot()`` reads the job object from the database (raising what the read raises,
    e.g. ``JobNotFound``); it is called after joining the group, so an event sent before the
    join is in the snapshot and any later one arrives. ``on_update(job, source)`` gets every
    job object that moved the job on, ``source`` being :data:`SOURCE_SNAPSHOT`,
    :data:`SOURCE_EVENT` or :data:`SOURCE_RESYNC`. Raises ``pydantic.ValidationError`` for an
    event whose job object is not one.
    """
    follower = JobFollower()
    follower.follow(job_id)
    channel = await layer.new_channel()
    group = messaging.job_group(job_id)
    await layer.group_add(group, channel)
    receiving: asyncio.Future[dict[str, Any]] | None = None
    try:
        latest = await read_snapshot()
        follower.note(latest)
        on_update(JobObject.model_validate(latest), SOURCE_SNAPSHOT)
        while not follower.is_final(latest):
            # One receive stays pending across resyncs: cancelling it could lose an event.
            receiving = receiving or asyncio.ensure_future(layer.receive(channel))
            done, _ = await asyncio.wait({receiving}, timeout=resync_after_s)
            if done:
                job, source = job_of_event(receiving.result()), SOURCE_EVENT
                receiving = None
            else:
                job, source = await read_snapshot(), SOURCE_RESYNC
            if job is not None and follower.offer(job):
                latest = job
                on_update(JobObject.model_validate(job), source)
        return JobObject.model_validate(latest)
    finally:
        if receiving is not None:
            receiving.cancel()
        await layer.group_discard(group, channel)
