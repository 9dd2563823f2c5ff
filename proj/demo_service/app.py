"""The demo remote service's HTTP side: a small HTTP job service for the ``remote`` job kind.

The routes, the payload checks, the bearer token and ``create_app``/``app`` (the ASGI app);
the jobs themselves are in ``proj.demo_service.jobs`` (no work: their state is computed from
the time each was created, read from an injected clock, ``time.monotonic`` in production), the
error answers in ``proj.demo_service.errors``. Jobs live in memory only: a restart forgets them.

Run it (the Procfile line)::

    daphne -b ${BIND_ADDRESS:-127.0.0.1} -p ${DEMO_SERVICE_PORT:-8001} proj.demo_service:app

A separate program: it imports nothing from ``tasks_app`` or ``realtime`` and uses neither
Django nor the project's settings, only the standard library and Starlette (importing it runs
``proj/__init__.py``, which creates the Celery app but configures nothing).

Contract (every body, errors included, is one JSON object; no answer is ever a traceback)
----------------------------------------------------------------------------------------
``POST /jobs``
    Body (every key optional; an empty body means ``{}``)::

        {"duration_s": number 0..3600 (default 10),
         "fail": bool (default false),
         "unavailable_s": number 0..3600 (default 0)}

    ``201 {"id": "<32 hex digits>"}``. Unknown keys or bad types/ranges:
    ``400 {"error": "invalid payload", "fields": {name: [messages]}}``; a body that is not JSON
    or not a JSON object (``NaN``/``Infinity`` are not JSON): ``400 {"error": "..."}``; a body
    over ``MAX_BODY_BYTES``: ``413``.

    ``Idempotency-Key`` header (at most ``MAX_IDEMPOTENCY_KEY_CHARS`` characters): the first
    request with a key creates the job (201); a repeat with the same key and the same payload
    (compared after defaults) answers ``200`` with the same id and creates nothing, so a caller
    may retry a start whose answer it lost. The same key with another payload:
    ``422 {"error": ..., "id": "<the first job's id>"}``.

``GET /jobs/{id}``
    ``200 {"id", "state", "progress": {"current", "total", "message"}, "result", "error",
    "deletes"}``:

    - ``state``: ``running``, then ``succeeded`` or ``failed`` (``fail: true``) once
      ``duration_s`` seconds have passed since creation; ``cancelled`` after a DELETE.
    - ``progress``: tenths of a second. ``total = max(1, round(duration_s * 10))``;
      ``current`` = tenths elapsed, capped at ``total`` (``total`` once final, frozen at the
      DELETE when cancelled); ``message`` like ``"3.2 of 10.0 s"``.
    - ``result``: ``{"duration_s": float, "ticks": total}`` when succeeded, else ``null``.
    - ``error``: ``"demo failure requested (fail=true)"`` when failed, else ``null``.
    - ``deletes``: how many DELETE requests this job has received (any answer).

    During the first ``unavailable_s`` seconds after creation this endpoint answers
    ``503 {"error": "temporarily unavailable"}`` with ``Retry-After: <whole seconds left, ≥ 1>``.
    Unknown id: ``404 {"error": "no job with this id"}``.

``DELETE /jobs/{id}``
    A running job becomes ``cancelled`` for good: ``200 {"state": "cancelled"}``. A job already
    final (cancelled included): ``409 {"error": "job already <state>", "state": "<state>"}``.
    Unknown id: 404. DELETE is not subject to the unavailability window.

``GET /health``
    ``200 {"ok": true}``; never needs a token.

Authentication: when a token is configured (``create_app(token=...)``, or else the environment
variable ``DEMO_SERVICE_TOKEN`` read when the app is created), every request except
``/health`` must carry ``Authorization: Bearer <token>``, else
``401 {"error": "missing or wrong bearer token"}``.

Other errors: unknown path 404, wrong method 405 (with ``Allow``), unexpected failure 500;
each with ``{"error": "..."}``.

Memory is bounded: at most ``MAX_JOBS`` jobs are kept (``create_app(max_jobs=...)``); creating
one more forgets the oldest, its id then answers 404 and its Idempotency-Key starts afresh.
State changes happen on the event loop without an ``await`` in between, so they need no lock.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import os
import time
from collections.abc import Mapping
from typing import Any, Final

from starlette import status
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from proj.demo_service.errors import InvalidPayload, PayloadTooLarge, ServiceError, Unavailable
from proj.demo_service.jobs import DEFAULT_DURATION_S, MAX_JOBS, MAX_SECONDS, Clock, JobSpec, JobStore

TOKEN_ENV: Final = "DEMO_SERVICE_TOKEN"
MAX_BODY_BYTES: Final = 16 * 1024
MAX_IDEMPOTENCY_KEY_CHARS: Final = 255
IDEMPOTENCY_HEADER: Final = "idempotency-key"
PUBLIC_PATHS: Final = frozenset({"/health"})


# --- payload ---


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _seconds(payload: Mapping[str, Any], name: str, default: float, fields: dict[str, list[str]]) -> float:
    value = payload.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        fields[name] = ["must be a number (seconds)"]
        return default
    if not 0 <= value <= MAX_SECONDS:
        fields[name] = [f"must be between 0 and {MAX_SECONDS:g} seconds"]
        return default
    return float(value)


def parse_spec(payload: Mapping[str, Any]) -> JobSpec:
    """Validate a ``POST /jobs`` body (a decoded JSON object); raises :class:`InvalidPayload`."""
    fields: dict[str, list[str]] = {}
    known = {f.name for f in dataclasses.fields(JobSpec)}
    for name in sorted(set(payload) - known):
        fields[name] = ["unknown field"]
    duration_s = _seconds(payload, "duration_s", DEFAULT_DURATION_S, fields)
    unavailable_s = _seconds(payload, "unavailable_s", 0.0, fields)
    fail = payload.get("fail", False)
    if not isinstance(fail, bool):
        fields["fail"] = ["must be a boolean"]
    if fields:
        raise InvalidPayload(fields)
    return JobSpec(duration_s=duration_s, fail=bool(fail), unavailable_s=unavailable_s)


async def read_json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object (empty body: ``{}``).

    Raises :class:`PayloadTooLarge` past ``MAX_BODY_BYTES``, :class:`ServiceError` (400) when the
    body is not JSON or not an object.
    """
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"body larger than {MAX_BODY_BYTES} bytes")
    if not body.strip():
        return {}
    try:
        payload = json.loads(bytes(body), parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise ServiceError(f"body is not valid JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise ServiceError("body must be a JSON object")
    return payload


def _idempotency_key(headers: Headers) -> str | None:
    key = headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    if not key or len(key) > MAX_IDEMPOTENCY_KEY_CHARS:
        raise ServiceError(f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} characters")
    return key


# --- HTTP ---


class DemoService:
    """The endpoints, over one :class:`JobStore`."""

    def __init__(self, store: JobStore) -> None:
        self.store = store

    async def start(self, request: Request) -> Response:
        key = _idempotency_key(request.headers)
        spec = parse_spec(await read_json_object(request))
        job, created = self.store.create(spec, idempotency_key=key)
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return JSONResponse({"id": job.id}, code)

    async def job(self, request: Request) -> Response:
        # One route per path keeps a 405's Allow header complete.
        return await (self.cancel(request) if request.method == "DELETE" else self.status(request))

    async def status(self, request: Request) -> Response:
        job = self.store.get(request.path_params["job_id"])
        now = self.store.clock()
        wait_s = job.unavailable_for(now)
        if wait_s > 0:
            raise Unavailable(wait_s)
        return JSONResponse(job.snapshot(now))

    async def cancel(self, request: Request) -> Response:
        job = self.store.cancel(request.path_params["job_id"])
        return JSONResponse({"state": job.state(self.store.clock())})

    async def health(self, request: Request) -> Response:
        return JSONResponse({"ok": True})


class BearerAuth:
    """ASGI middleware: HTTP requests outside ``PUBLIC_PATHS`` need ``Authorization: Bearer <token>``."""

    def __init__(self, app: ASGIApp, *, token: str) -> None:
        assert token, "an empty token would let everyone in"
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in PUBLIC_PATHS:
            given = Headers(scope=scope).get("authorization", "").encode()
            if not hmac.compare_digest(given, self.expected):
                response = JSONResponse(
                    {"error": "missing or wrong bearer token"},
                    status.HTTP_401_UNAUTHORIZED,
                    headers={"WWW-Authenticate": "Bearer"},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    return exc.response()


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail.lower()}, exc.status_code, headers=exc.headers)


async def _internal_error(request: Request, exc: Exception) -> Response:
    # Starlette re-raises after this answer, so the server still logs the traceback.
    return JSONResponse({"error": "internal error"}, status.HTTP_500_INTERNAL_SERVER_ERROR)


def create_app(*, clock: Clock = time.monotonic, token: str | None = None, max_jobs: int = MAX_JOBS) -> Starlette:
    """The ASGI application with an empty :class:`JobStore`.

    ``clock``: seconds as a float, monotonic. ``token``: the bearer token; ``None`` reads
    ``DEMO_SERVICE_TOKEN`` from the environment now, ``""`` (or an unset/empty variable) turns
    authentication off. ``max_jobs``: how many jobs are kept before the oldest is forgotten.
    """
    if token is None:
        token = os.environ.get(TOKEN_ENV, "")
    service = DemoService(JobStore(clock=clock, max_jobs=max_jobs))
    app = Starlette(
        routes=[
            Route("/health", service.health, methods=["GET"]),
            Route("/jobs", service.start, methods=["POST"]),
            Route("/jobs/{job_id}", service.job, methods=["GET", "DELETE"]),
        ],
        exception_handlers={
            ServiceError: _service_error,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
    )
    if token:
        app.add_middleware(BearerAuth, token=token)
    return app


app = create_app()
