"""HTTP JSON API at ``/api/``: the WebSocket's job operations for scripts, with its error codes.

The same services and selectors as ``realtime.consumers``; the same job object
(``selectors.job_snapshot``) and the same error codes (``tasks_app.errors``), each answered
with the HTTP status of ``errors.STATUS_BY_CODE``. Every response, errors included, is declared
per status, so the OpenAPI schema at ``/api/openapi.json`` describes all of it.

A module per resource (``jobs``, ``tokens``: a ninja ``Router`` each), with the bodies
(``schemas``), the authentication (``auth``) and the error handlers (``errors``) apart; this
module builds :data:`api` from them.

Authentication: Django's session cookie with the CSRF token for unsafe methods (the page), or
``Authorization: Bearer <token>`` (scripts; tokens from ``POST /api/tokens/`` or
``manage.py api_token create``). The interactive docs page is ``/api/docs``: ninja's Swagger page,
served from ninja's own static files (``ninja`` is in ``INSTALLED_APPS``, so no CDN).
"""

from __future__ import annotations

from typing import Any, Final

from ninja import NinjaAPI
from ninja.openapi.schema import OpenAPISchema

from tasks_app.api import errors, jobs, openapi, tokens
from tasks_app.api.auth import SessionCsrfAuth, TokenAuth
from tasks_app.kinds import REGISTRY

API_DESCRIPTION: Final = """\
Start long-running jobs, read their progress and cancel them: the operations of the
WebSocket protocol v1 (`/ws/jobs/`) over plain HTTP, for scripts. The job object is the one
the WebSocket frames carry; live progress stays on the WebSocket.

**Authentication**: the Django session cookie (unsafe methods also need the CSRF token in
the `X-CSRFToken` header), or `Authorization: Bearer <token>` with a token from
`POST /api/tokens/` or `manage.py api_token create USERNAME`.

**Errors** are JSON `{"code", "message"}` (plus `fields`: `{name: [messages]}` for
`invalid_params`, `invalid_message` and `invalid_json`), with the WebSocket's codes:
400 `unknown_kind`, `invalid_params`, `invalid_message`, `invalid_json`; 401
`not_authenticated`; 403 `csrf_failed`; 404 `not_found` (also another user's job, and ids
that are not UUIDs); 409 `not_cancellable`; 422 `idempotency_conflict`; 429 `rate_limited`; 500 `internal`.
"""


class JobsAPI(NinjaAPI):
    """The API, whose OpenAPI document describes ``POST /api/jobs/``'s body per job kind
    (``tasks_app.api.openapi``), from the kinds registered when the document is asked for."""

    def get_openapi_schema(
        self, *, path_prefix: str | None = None, path_params: dict[str, Any] | None = None
    ) -> OpenAPISchema:
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        openapi.describe_job_start(schema, REGISTRY)
        return schema


api = JobsAPI(
    title="Job progress API",
    version="1",
    description=API_DESCRIPTION,
    urls_namespace="api",
    docs_url="/docs",  # Swagger UI served from ninja's own static files ("ninja" in INSTALLED_APPS): no CDN
    auth=[TokenAuth(), SessionCsrfAuth()],
)
api.add_router("/jobs/", jobs.router)
api.add_router("/tokens/", tokens.router)
errors.install(api)
