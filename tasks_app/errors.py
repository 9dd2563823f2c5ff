"""The application's error family: each error carries the one protocol code it maps to.

The WebSocket consumer (and any other adapter) turns an ``ApplicationError`` into an
``error`` frame ``{"code": exc.code, "message": str(exc)}`` (plus ``fields`` for
``InvalidParams``) without knowing the subclasses.
"""

from __future__ import annotations

#: Error codes of protocol v1 (DESIGN.md "WebSocket protocol"). Named once, used everywhere.
CODE_INVALID_JSON = "invalid_json"
CODE_INVALID_MESSAGE = "invalid_message"
CODE_UNKNOWN_TYPE = "unknown_type"
CODE_UNKNOWN_KIND = "unknown_kind"
CODE_INVALID_PARAMS = "invalid_params"
CODE_IDEMPOTENCY_CONFLICT = "idempotency_conflict"
CODE_NOT_FOUND = "not_found"
CODE_RATE_LIMITED = "rate_limited"
CODE_NOT_CANCELLABLE = "not_cancellable"
CODE_INTERNAL = "internal"


class ApplicationError(Exception):
    """Base of every error a client may see; ``code`` is its protocol error code."""

    code: str = CODE_INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnknownKind(ApplicationError):
    """``job.start`` named a kind that is not registered."""

    code = CODE_UNKNOWN_KIND


class InvalidParams(ApplicationError):
    """Parameters failed the kind's schema; ``fields`` maps a parameter to its messages."""

    code = CODE_INVALID_PARAMS

    def __init__(self, fields: dict[str, list[str]], message: str = "invalid parameters") -> None:
        super().__init__(message)
        self.fields = fields


class IdempotencyConflict(ApplicationError):
    """``job.start`` re-used an ``idempotency_key`` of the same user with another kind or other
    parameters (HTTP 422, as draft-ietf-httpapi-idempotency-key-header-06 section 2.7 asks
    for a key re-used with a different request)."""

    code = CODE_IDEMPOTENCY_CONFLICT

    def __init__(self, key: str) -> None:
        super().__init__(f"idempotency_key {key!r} was already used for a job with another kind or other parameters")


class JobNotFound(ApplicationError):
    """No such job for this user (another user's job is reported the same way: ids do not leak)."""

    code = CODE_NOT_FOUND

    def __init__(self, job_id: object) -> None:
        super().__init__(f"job {job_id} not found")


class NotCancellable(ApplicationError):
    """The job already reached a final state."""

    code = CODE_NOT_CANCELLABLE


class RateLimited(ApplicationError):
    """The user asked for more than the limits allow (frames per second, active jobs)."""

    code = CODE_RATE_LIMITED
