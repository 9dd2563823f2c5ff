"""WebSocket consumers: parse, authorize, delegate to services, answer.

``JobsConsumer`` speaks protocol v1 at ``/ws/jobs/``; ``SeedProgressConsumer`` speaks the
original demo's protocol at ``/prog/``. Neither sleeps, loops or does a job's work.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from realtime import messaging, metrics
from realtime.follower import JobFollower
from realtime.protocol import (
    CLOSE_FRAME_TOO_LARGE,
    CLOSE_RATE_LIMITED,
    T_CANCEL,
    T_LIST,
    T_START,
    T_SUBSCRIBE,
    T_UNSUBSCRIBE,
    T_UNSUBSCRIBED,
    ClientFrame,
    ProtocolError,
    TokenBucket,
    error_frame,
    parse_frame,
)
from tasks_app import selectors, services
from tasks_app.errors import (
    CODE_INTERNAL,
    CODE_INVALID_MESSAGE,
    CODE_RATE_LIMITED,
    ApplicationError,
    InvalidParams,
    JobNotFound,
)
from tasks_app.states import FINAL_STATES

logger = logging.getLogger(__name__)


@database_sync_to_async
def _snapshot(owner: Any, job_id: str) -> dict[str, Any]:
    return selectors.job_snapshot(selectors.job_get(owner=owner, job_id=job_id))


@database_sync_to_async
def _start(owner: Any, kind: str, params: dict[str, Any], key: str | None) -> str:
    return str(services.job_start(owner=owner, kind=kind, params=params, idempotency_key=key).id)


@database_sync_to_async
def _cancel(owner: Any, job_id: str) -> dict[str, Any]:
    return selectors.job_snapshot(services.job_cancel(owner=owner, job_id=job_id))


@database_sync_to_async
def _list(owner: Any, limit: int) -> list[dict[str, Any]]:
    return [selectors.job_snapshot(j) for j in selectors.job_list(owner=owner, limit=limit)]


def canonical_job_id(raw: str) -> str:
    """The canonical form of a client's job id; anything not a UUID is ``JobNotFound``."""
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise JobNotFound(raw) from None


class _FollowingConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    """Base: refuses anonymous sockets, joins job groups and forwards their events in order.

    ``self.following`` (a :class:`~realtime.follower.JobFollower`) holds the highest ``seq``
    this socket was sent of each job; live events with a lower or equal ``seq`` are dropped,
    and after a final frame the socket leaves the job's group, so no frame of a job ever
    follows its final one.

    Counts its frames (``jobs_ws_frames_sent_total``) and, while accepted, itself
    (``jobs_ws_open_sockets``) under the class's ``endpoint`` label (``realtime.metrics``).
    """

    endpoint: str = metrics.ENDPOINT_JOBS

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Run the handler of ``message``; a channel-layer job event goes straight to
        :meth:`job_event`. Channels (4.2 and later) runs Django's ``close_old_connections``
        in a worker thread before every handler (``await aclose_old_connections()``,
        channels/consumer.py:73): a thread hop for every event on every socket, 24 % of the web
        process's CPU when one job fans out to 1,000 sockets (py-spy, ``make bench``). The relay
        of a job event reads no database, and every handler that does goes through
        ``database_sync_to_async``, which closes old connections in its own thread
        (channels/db.py, ``DatabaseSyncToAsync.thread_handler``)."""
        if message.get("type") == messaging.EVENT_JOB:
            await self.job_event(message)
            return
        await super().dispatch(message)

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close()  # before accept(): the handshake is refused with HTTP 403
            return
        self.user = user
        self.following = JobFollower()
        self.bucket = TokenBucket(burst=settings.WS_RATE_BURST, rate=settings.WS_RATE_PER_S)
        self.strikes = 0
        self.closing = False
        self.frames_sent = metrics.FRAMES_SENT.labels(self.endpoint)  # looked up once, not per frame
        await self.accept()
        self.counted_open = True
        metrics.OPEN_SOCKETS.labels(self.endpoint).inc()
        await self.connected()

    async def send(self, text_data: str | None = None, bytes_data: bytes | None = None, close: bool = False) -> None:
        """Send one frame (channels' ``send``), counted in ``jobs_ws_frames_sent_total``."""
        await super().send(text_data=text_data, bytes_data=bytes_data, close=close)
        self.frames_sent.inc()

    async def send_json(self, content: Any, close: bool = False) -> None:
        """Send one JSON frame, counted as :meth:`send` counts: channels' ``send_json`` calls the
        base class's ``send`` (``super().send``, channels/generic/websocket.py:284), not ours."""
        await super().send_json(content, close=close)
        self.frames_sent.inc()

    async def admit(self, text_data: str | None, bytes_data: bytes | None) -> bool:
        """The limits every socket endpoint shares (README "WebSocket protocol"): True when the
        frame may be handled. A frame over ``WS_MAX_FRAME_BYTES`` closes the socket (4400);
        frames beyond the token bucket (``WS_RATE_BURST``, ``WS_RATE_PER_S``) are refused
        (:meth:`refuse_rate`), and after ``WS_RATE_STRIKES_BEFORE_CLOSE`` refusals in a row the
        socket is closed (4429). Once closing, frames still queued are dropped unhandled."""
        if self.closing:
            return False
        size = len(text_data.encode()) if text_data is not None else len(bytes_data or b"")
        if size > settings.WS_MAX_FRAME_BYTES:
            logger.warning("closing socket of user %s: %s-byte frame", self.user.pk, size)
            await self.close_for_abuse(CLOSE_FRAME_TOO_LARGE)
            return False
        if not self.bucket.take():
            self.strikes += 1
            if self.strikes > settings.WS_RATE_STRIKES_BEFORE_CLOSE:
                logger.warning("closing socket of user %s: frame flood", self.user.pk)
                await self.close_for_abuse(CLOSE_RATE_LIMITED)
            else:
                await self.refuse_rate()
            return False
        self.strikes = 0
        return True

    async def close_for_abuse(self, code: int) -> None:
        """Close with ``code``; frames the client sent before it are not handled."""
        self.closing = True
        await self.close(code=code)

    async def refuse_rate(self) -> None:
        """Answer a frame refused for rate (in this consumer's protocol)."""
        raise NotImplementedError

    async def connected(self) -> None:
        """Hook run after ``accept()``."""

    async def disconnect(self, code: int) -> None:
        if getattr(self, "counted_open", False):  # a refused handshake was never counted
            self.counted_open = False
            metrics.OPEN_SOCKETS.labels(self.endpoint).dec()
        for job_id in getattr(self, "following", ()):
            await self.channel_layer.group_discard(messaging.job_group(job_id), self.channel_name)

    async def follow(self, job_id: str) -> None:
        """Join the job's group (before reading its snapshot, so nothing falls in between)."""
        if self.following.follow(job_id):
            await self.channel_layer.group_add(messaging.job_group(job_id), self.channel_name)

    async def unfollow(self, job_id: str) -> None:
        """Leave the job's group."""
        if self.following.unfollow(job_id):
            await self.channel_layer.group_discard(messaging.job_group(job_id), self.channel_name)

    async def layer_reconnected(self, event: dict[str, Any]) -> None:
        """Channel-layer event ``layer.reconnected``: Redis was away or lost its data, so the
        group memberships may be gone and events missed. Join every followed job's group
        again, then re-read each job and forward it like a live event (stale ones drop)."""
        for job_id in self.following:
            try:
                await self.channel_layer.group_add(messaging.job_group(job_id), self.channel_name)
                job = await _snapshot(self.user, job_id)
            except JobNotFound:
                self.following.unfollow(job_id)
                continue
            except Exception as exc:
                logger.warning("socket of user %s: job %s not resynced after reconnect: %s", self.user.pk, job_id, exc)
                continue
            await self.job_event(messaging.job_event(job))

    async def job_event(self, event: dict[str, Any]) -> None:
        """Channel-layer event ``job.event``: forward it unless stale, then stop after final."""
        job = event["job"]
        if not self.following.offer(job):
            return
        await self.send_job_frame(event["frame"], job)
        if self.following.is_final(job):
            await self.unfollow(job["id"])

    async def send_job_frame(self, frame_type: str, job: dict[str, Any]) -> None:
        """Send one live job frame in this consumer's protocol."""
        raise NotImplementedError


#: The last live frame encoded: ``(frame type, job object, JSON text)``. One job event reaches
#: every socket of its group with the same job object (``realtime.layers`` decodes a group
#: message once), so it is encoded once, not once per socket. The job object is held here, so
#: its ``id()`` cannot be reused while the entry lives.
_last_frame: tuple[str, dict[str, Any], str] = ("", {}, "")


def _encoded_frame(frame_type: str, job: dict[str, Any]) -> str:
    """The JSON text of the live frame ``{"type": frame_type, "job": job}`` (as ``send_json``
    encodes it: ``json.dumps``), from :data:`_last_frame` when it is the same job object."""
    global _last_frame
    last_type, last_job, text = _last_frame
    if last_job is not job or last_type != frame_type:
        text = json.dumps({"type": frame_type, "job": job})
        _last_frame = (frame_type, job, text)
    return text


class JobsConsumer(_FollowingConsumer):
    """Protocol v1 at ``/ws/jobs/`` (DESIGN.md "WebSocket protocol, version 1")."""

    async def refuse_rate(self) -> None:
        await self.send_json(error_frame(CODE_RATE_LIMITED, "too many frames; slow down"))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if not await self.admit(text_data, bytes_data):
            return
        if text_data is None:
            await self.send_json(error_frame(CODE_INVALID_MESSAGE, "binary frames are not part of the protocol"))
            return
        try:
            frame = parse_frame(text_data)
        except ProtocolError as exc:
            await self.send_json(error_frame(exc.code, exc.message, exc.request_id))
            return
        try:
            await self.handle(frame)
        except ApplicationError as exc:
            fields = exc.fields if isinstance(exc, InvalidParams) else None
            await self.send_json(error_frame(exc.code, exc.message, frame.request_id, fields))
        except Exception:
            logger.exception("internal error handling %s for user %s", frame.type, self.user.pk)
            await self.send_json(
                error_frame(CODE_INTERNAL, "internal error; the server log has the details", frame.request_id)
            )

    async def handle(self, frame: ClientFrame) -> None:
        """Delegate one parsed frame; ``ApplicationError`` becomes an error frame."""
        f, rid = frame.fields, frame.request_id
        if frame.type == T_START:
            job_id = await _start(self.user, f["kind"], f["params"], f["idempotency_key"])
            await self.answer_with_job(messaging.FRAME_ACCEPTED, job_id, rid)
        elif frame.type == T_SUBSCRIBE:
            await self.answer_with_job(messaging.FRAME_SNAPSHOT, canonical_job_id(f["job_id"]), rid)
        elif frame.type == T_UNSUBSCRIBE:
            job_id = canonical_job_id(f["job_id"])
            await self.unfollow(job_id)
            await self.send_json({"type": T_UNSUBSCRIBED, "job_id": job_id, "request_id": rid})
        elif frame.type == T_CANCEL:
            job = await _cancel(self.user, canonical_job_id(f["job_id"]))
            self.following.note(job)
            await self.send_json({"type": messaging.FRAME_SNAPSHOT, "job": job, "request_id": rid})
        elif frame.type == T_LIST:
            jobs = await _list(self.user, f["limit"])
            await self.send_json({"type": T_LIST, "jobs": jobs, "request_id": rid})

    async def answer_with_job(self, frame_type: str, job_id: str, rid: str | None) -> None:
        """Follow the job, then answer with its snapshot read after joining the group."""
        await self.follow(job_id)
        try:
            job = await _snapshot(self.user, job_id)
        except ApplicationError:
            await self.unfollow(job_id)
            raise
        self.following.note(job)
        await self.send_json({"type": frame_type, "job": job, "request_id": rid})
        if self.following.is_final(job):
            await self.unfollow(job_id)

    async def send_job_frame(self, frame_type: str, job: dict[str, Any]) -> None:
        await self.send(text_data=_encoded_frame(frame_type, job))


#: What ``/prog/`` starts: the original demo's work (step 3 every 200 ms).
SEED_PARAMS = {"step": 3, "interval_ms": 200}
SEED_ACTION_START = "start"
SEED_UNKNOWN_MESSAGE = 'unknown message; send {"action": "start"}'


class SeedProgressConsumer(_FollowingConsumer):
    """The original demo's protocol at ``/prog/`` for a logged-in user.

    Server: ``{"accept": true}`` on connect; client: ``{"action": "start"}``; server:
    ``{"progress": N}`` frames, then ``{"complete": true, "progress": 100}``. A failed or
    cancelled job ends with ``{"complete": true, "error": "..."}``; anything else the
    client sends is answered ``{"error": "..."}``.
    """

    endpoint = metrics.ENDPOINT_PROG

    async def connected(self) -> None:
        self.last_progress: dict[str, int] = {}
        await self.send_json({"accept": True})

    async def refuse_rate(self) -> None:
        await self.send_json({"error": "too many frames; slow down"})

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """The same limits as ``/ws/jobs/`` (:meth:`admit`), then the demo's one message."""
        if not await self.admit(text_data, bytes_data):
            return
        if not text_data:  # a binary or empty frame
            await self.send_json({"error": SEED_UNKNOWN_MESSAGE})
            return
        await super().receive(text_data=text_data)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not isinstance(content, dict) or content.get("action") != SEED_ACTION_START:
            await self.send_json({"error": SEED_UNKNOWN_MESSAGE})
            return
        try:
            job_id = await _start(self.user, "simulated", dict(SEED_PARAMS), None)
        except ApplicationError as exc:
            await self.send_json({"error": exc.message})
            return
        await self.follow(job_id)

    async def decode_json(self, text_data: str) -> Any:
        try:
            return await super().decode_json(text_data)
        except (ValueError, RecursionError):  # not JSON, or nested too deep to parse
            return None

    async def send_job_frame(self, frame_type: str, job: dict[str, Any]) -> None:
        state = job["state"]
        current = int(job["progress"]["current"])
        if state == "succeeded":
            await self.send_json({"complete": True, "progress": 100})
        elif state in FINAL_STATES:
            await self.send_json({"complete": True, "error": job["error"] or state})
        elif current != self.last_progress.get(job["id"]):
            self.last_progress[job["id"]] = current
            await self.send_json({"progress": current})
