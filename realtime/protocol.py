"""WebSocket protocol v1: client frame parsing, error frames, close codes, rate limiting.

Source: DESIGN.md "WebSocket protocol, version 1" (copied in the README). Pure Python:
no Django, no Channels, so it is tested on its own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import ValidationError

from tasks_app.errors import CODE_INVALID_JSON, CODE_INVALID_MESSAGE, CODE_UNKNOWN_TYPE
from tasks_app.jobobject import LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX, LIST_LIMIT_MIN, JobStartRequest

#: Close codes for abuse (the only reasons the server closes a socket).
CLOSE_FRAME_TOO_LARGE: Final = 4400
CLOSE_RATE_LIMITED: Final = 4429

REQUEST_ID_MAX_CHARS: Final = 64
JOB_ID_MAX_CHARS: Final = 64
#: The fields of ``job.start`` (the rest of the frame is ``type`` and ``request_id``).
START_FIELDS: Final = tuple(JobStartRequest.model_fields)

T_START: Final = "job.start"
T_SUBSCRIBE: Final = "job.subscribe"
T_UNSUBSCRIBE: Final = "job.unsubscribe"
T_CANCEL: Final = "job.cancel"
T_LIST: Final = "job.list"
T_UNSUBSCRIBED: Final = "job.unsubscribed"
T_ERROR: Final = "error"
CLIENT_TYPES: Final = (T_START, T_SUBSCRIBE, T_UNSUBSCRIBE, T_CANCEL, T_LIST)


class ProtocolError(Exception):
    """A client frame that is not valid protocol; ``code`` is its error code.

    ``request_id`` is echoed when the frame had a valid one.
    """

    def __init__(self, code: str, message: str, request_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


@dataclass(frozen=True)
class ClientFrame:
    """A parsed client frame: its ``type``, optional ``request_id`` and checked fields."""

    type: str
    request_id: str | None
    fields: dict[str, Any] = field(default_factory=dict)


def _string(obj: dict[str, Any], name: str, *, required: bool, max_chars: int, rid: str | None) -> str | None:
    value = obj.get(name)
    if value is None:
        if required:
            raise ProtocolError(CODE_INVALID_MESSAGE, f"'{name}' is required", rid)
        return None
    if not isinstance(value, str) or not value or len(value) > max_chars:
        raise ProtocolError(
            CODE_INVALID_MESSAGE, f"'{name}' must be a non-empty string of at most {max_chars} characters", rid
        )
    return value


def _start_fields(obj: dict[str, Any], rid: str | None) -> dict[str, Any]:
    """``job.start``'s fields checked by :class:`~tasks_app.jobobject.JobStartRequest` (the
    HTTP API's body too); ``invalid_message`` naming the first bad field otherwise."""
    try:
        request = JobStartRequest.model_validate({name: obj[name] for name in START_FIELDS if name in obj})
    except ValidationError as exc:
        error = exc.errors()[0]
        name = ".".join(str(part) for part in error["loc"]) or "frame"
        raise ProtocolError(CODE_INVALID_MESSAGE, f"'{name}': {error['msg']}", rid) from None
    return request.model_dump()


def parse_frame(text: str) -> ClientFrame:
    """Parse one text frame into a :class:`ClientFrame`.

    Raises :class:`ProtocolError` with ``invalid_json`` (not JSON), ``invalid_message``
    (not an object, bad ``request_id`` or fields) or ``unknown_type``.
    """
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        raise ProtocolError(CODE_INVALID_JSON, "the frame is not valid JSON") from None
    if not isinstance(obj, dict):
        raise ProtocolError(CODE_INVALID_MESSAGE, "a frame must be a JSON object with a 'type'")
    rid = obj.get("request_id")
    if rid is not None and (not isinstance(rid, str) or len(rid) > REQUEST_ID_MAX_CHARS):
        raise ProtocolError(
            CODE_INVALID_MESSAGE, f"'request_id' must be a string of at most {REQUEST_ID_MAX_CHARS} characters"
        )
    ftype = obj.get("type")
    if not isinstance(ftype, str):
        raise ProtocolError(CODE_INVALID_MESSAGE, "'type' must be a string", rid)
    if ftype not in CLIENT_TYPES:
        known = ", ".join(CLIENT_TYPES)
        raise ProtocolError(CODE_UNKNOWN_TYPE, f"unknown type {ftype[:64]!r}; known types: {known}", rid)
    fields: dict[str, Any] = {}
    if ftype == T_START:
        fields.update(_start_fields(obj, rid))
    elif ftype == T_LIST:
        limit = obj.get("limit", LIST_LIMIT_DEFAULT)
        if isinstance(limit, bool) or not isinstance(limit, int) or not LIST_LIMIT_MIN <= limit <= LIST_LIMIT_MAX:
            raise ProtocolError(
                CODE_INVALID_MESSAGE, f"'limit' must be a whole number from {LIST_LIMIT_MIN} to {LIST_LIMIT_MAX}", rid
            )
        fields["limit"] = limit
    else:
        fields["job_id"] = _string(obj, "job_id", required=True, max_chars=JOB_ID_MAX_CHARS, rid=rid)
    return ClientFrame(type=ftype, request_id=rid, fields=fields)


def error_frame(
    code: str, message: str, request_id: str | None = None, fields: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    """The ``error`` frame: ``{"type": "error", "code", "message", "request_id"[, "fields"]}``."""
    frame: dict[str, Any] = {"type": T_ERROR, "code": code, "message": message, "request_id": request_id}
    if fields is not None:
        frame["fields"] = fields
    return frame


class TokenBucket:
    """Token bucket rate limiter: ``burst`` tokens, refilled at ``rate`` tokens a second.

    Source: the classic token bucket (e.g. RFC 2697's committed burst and rate).
    """

    def __init__(self, *, burst: int, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(burst)
        self.rate = rate
        self.clock = clock
        self.tokens = float(burst)
        self.updated = clock()

    def take(self) -> bool:
        """Take one token; False when the bucket is empty (the frame is refused)."""
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False
