"""The demo service's errors: each one maps to one status and body, in one place (``ServiceError.response``).

Part of the separate ``proj.demo_service`` program: imports nothing from ``tasks_app`` or ``realtime``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from starlette import status
from starlette.responses import JSONResponse

__all__ = [
    "IdempotencyConflict",
    "InvalidPayload",
    "JobNotFound",
    "NotCancellable",
    "PayloadTooLarge",
    "ServiceError",
    "Unavailable",
]


class ServiceError(Exception):
    """An answer other than success: ``status_code`` with ``{"error": message, **extra}``."""

    status_code = status.HTTP_400_BAD_REQUEST

    def __init__(self, message: str, *, headers: Mapping[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.headers = dict(headers or {})
        self.extra = extra

    def response(self) -> JSONResponse:
        return JSONResponse({"error": self.message, **self.extra}, self.status_code, headers=self.headers)


class InvalidPayload(ServiceError):
    """400 with ``fields``: ``{name: [messages]}``."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        super().__init__("invalid payload", fields=fields)


class PayloadTooLarge(ServiceError):
    status_code = status.HTTP_413_CONTENT_TOO_LARGE


class IdempotencyConflict(ServiceError):
    status_code = status.HTTP_422_UNPROCESSABLE_CONTENT


class JobNotFound(ServiceError):
    status_code = status.HTTP_404_NOT_FOUND

    def __init__(self) -> None:
        super().__init__("no job with this id")


class NotCancellable(ServiceError):
    status_code = status.HTTP_409_CONFLICT

    def __init__(self, state: str) -> None:
        super().__init__(f"job already {state}", state=state)


class Unavailable(ServiceError):
    """503 with ``Retry-After`` in whole seconds (at least 1)."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE

    def __init__(self, retry_after_s: float) -> None:
        seconds = max(1, math.ceil(retry_after_s))
        super().__init__("temporarily unavailable", headers={"Retry-After": str(seconds)})
