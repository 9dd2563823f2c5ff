"""HTTP JSON API at ``/api/``: the WebSocket's job operations for scripts, with its error codes.

The same services and selectors as ``realtime.consumers``; the same job object
(``selectors.job_snapshot``) and the same error codes (``tasks_app.errors``), each answered
with the HTTP status of :data:`STATUS_BY_CODE`. Every response, errors included, is declared
per status, so the OpenAPI schema at ``/api/openapi.json`` describes all of it.

Authentication: Django's session cookie with the CSRF token for unsafe methods (the page), or
``Authorization: Bearer <token>`` (scripts; tokens from ``POST /api/tokens/`` or
``manage.py api_token create``). The interactive docs page is off: ninja's Swagger page loads
its scripts from a CDN unless ``ninja`` is in ``INSTALLED_APPS``.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Annotated, Any, Final, Literal

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import BadRequest, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from ninja import Field, NinjaAPI, Path, Query, Schema, Status
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.openapi.schema import OpenAPISchema
from ninja.security import HttpBearer
from ninja.security.apikey import APIKeyCookie
from ninja.utils import check_csrf
from pydantic import BaseModel, ConfigDict

from tasks_app import openapi, selectors, services, tokens
from tasks_app.errors import (
    CODE_IDEMPOTENCY_CONFLICT,
    CODE_INTERNAL,
    CODE_INVALID_JSON,
    CODE_INVALID_MESSAGE,
    CODE_INVALID_PARAMS,
    CODE_NOT_CANCELLABLE,
    CODE_NOT_FOUND,
    CODE_RATE_LIMITED,
    CODE_UNKNOWN_KIND,
    ApplicationError,
    InvalidParams,
)
from tasks_app.jobobject import LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX, IsoDateTime, JobObject, JobStartRequest
from tasks_app.kinds import REGISTRY
from tasks_app.models import ApiToken
from tasks_app.views import CODE_CSRF_FAILED, CODE_NOT_AUTHENTICATED

logger = logging.getLogger(__name__)

#: HTTP status of each application error code (``ApplicationError.code``).
STATUS_BY_CODE: Final[dict[str, HTTPStatus]] = {
    CODE_UNKNOWN_KIND: HTTPStatus.BAD_REQUEST,
    CODE_INVALID_PARAMS: HTTPStatus.BAD_REQUEST,
    CODE_NOT_FOUND: HTTPStatus.NOT_FOUND,
    CODE_RATE_LIMITED: HTTPStatus.TOO_MANY_REQUESTS,
    CODE_NOT_CANCELLABLE: HTTPStatus.CONFLICT,
    CODE_IDEMPOTENCY_CONFLICT: HTTPStatus.UNPROCESSABLE_ENTITY,
    CODE_INTERNAL: HTTPStatus.INTERNAL_SERVER_ERROR,
}
INTERNAL_MESSAGE: Final = "internal error; the server log has the details"
#: Field name under which errors of the request body as a whole are reported.
BODY_FIELD: Final = "body"

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

# --- schemas: the job object is tasks_app.jobobject.JobObject ----------------------------


class JobPageOut(BaseModel):
    """One page of the user's jobs, newest first; ``count`` is the number of all of them."""

    count: int = Field(description="How many jobs the user has in all.")
    limit: int
    offset: int
    items: list[JobObject]


#: Largest ``offset`` of ``GET /api/jobs/``: far past any real history, well inside the
#: database's 64-bit integers (a larger one answered 500 on SQLite: "datatype mismatch").
LIST_OFFSET_MAX = 1_000_000_000


class PageIn(Schema):
    """Query of ``GET /api/jobs/``: ``?limit=&offset=``; any other key is refused."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(LIST_LIMIT_DEFAULT, ge=1, le=LIST_LIMIT_MAX, description="Jobs per page.")
    offset: int = Field(0, ge=0, le=LIST_OFFSET_MAX, description="Jobs to skip, newest first.")


# --- schemas: tokens -------------------------------------------------------------------------


class TokenCreateIn(Schema):
    """Body of ``POST /api/tokens/``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("", description=f"What the token is for (at most {tokens.NAME_MAX_CHARS} characters).")


class TokenOut(Schema):
    """An API token as listed: never the token itself."""

    prefix: str = Field(description="The token's first characters; names it in DELETE /api/tokens/{prefix}/.")
    name: str
    created_at: IsoDateTime
    last_used_at: IsoDateTime | None = Field(description="Updated at most once a minute.")


class TokenCreatedOut(Schema):
    """A new token, with the secret itself: shown this once, only its digest is stored."""

    token: str = Field(description="Send it as 'Authorization: Bearer <token>'.")
    prefix: str
    name: str
    created_at: IsoDateTime


class TokenListOut(Schema):
    """The user's API tokens, newest first."""

    count: int
    items: list[TokenOut]


# --- schemas: errors (one per status, each listing the codes it may carry) -------------------


class BadRequestError(Schema):
    """400: the request cannot be done as sent; ``fields`` names the bad fields."""

    code: Literal["unknown_kind", "invalid_params", "invalid_message", "invalid_json"]
    message: str
    fields: dict[str, list[str]] | None = Field(None, description="Field name → messages.")


class NotAuthenticatedError(Schema):
    """401: no session and no valid bearer token."""

    code: Literal["not_authenticated"]
    message: str


class CsrfFailedError(Schema):
    """403: a session request with an unsafe method lacked a valid CSRF token."""

    code: Literal["csrf_failed"]
    message: str


class NotFoundError(Schema):
    """404: no such job or token for this user."""

    code: Literal["not_found"]
    message: str


class NotCancellableError(Schema):
    """409: the job already succeeded, failed or was cancelled."""

    code: Literal["not_cancellable"]
    message: str


class IdempotencyConflictError(Schema):
    """422: the idempotency key was used before for a job of another kind or parameters
    (draft-ietf-httpapi-idempotency-key-header-06, section 2.7)."""

    code: Literal["idempotency_conflict"]
    message: str


class RateLimitedError(Schema):
    """429: too many active jobs."""

    code: Literal["rate_limited"]
    message: str


class InternalError(Schema):
    """500: an unexpected error; the server log has the details."""

    code: Literal["internal"]
    message: str


ERROR_SCHEMAS: Final[dict[HTTPStatus, type[Schema]]] = {
    HTTPStatus.BAD_REQUEST: BadRequestError,
    HTTPStatus.UNAUTHORIZED: NotAuthenticatedError,
    HTTPStatus.FORBIDDEN: CsrfFailedError,
    HTTPStatus.NOT_FOUND: NotFoundError,
    HTTPStatus.CONFLICT: NotCancellableError,
    HTTPStatus.UNPROCESSABLE_ENTITY: IdempotencyConflictError,
    HTTPStatus.TOO_MANY_REQUESTS: RateLimitedError,
    HTTPStatus.INTERNAL_SERVER_ERROR: InternalError,
}


def responses(success: dict[HTTPStatus, Any], *errors: HTTPStatus) -> dict[int, Any]:
    """An operation's ``response`` map: its success schemas, the given error statuses, and
    401 and 500, which every operation may answer."""
    statuses = {*errors, HTTPStatus.UNAUTHORIZED, HTTPStatus.INTERNAL_SERVER_ERROR}
    return {int(s): schema for s, schema in success.items()} | {int(s): ERROR_SCHEMAS[s] for s in statuses}


# --- authentication --------------------------------------------------------------------------


class CsrfFailed(Exception):
    """A session request with an unsafe method failed Django's CSRF check."""


class InvalidToken(Exception):
    """A request carried a bearer token that is not (or no longer) valid."""


class SessionCsrfAuth(APIKeyCookie):
    """Django's session (``request.user``); unsafe methods also need the CSRF token.

    The CSRF check runs after the session is known, so an anonymous request is 401
    ``not_authenticated`` rather than 403: CSRF protects a session, and there is none.
    Raises :class:`CsrfFailed` for a logged-in request that fails the check.
    """

    param_name = settings.SESSION_COOKIE_NAME

    def __init__(self) -> None:
        super().__init__(csrf=False)  # checked in authenticate, once there is a session

    def authenticate(self, request: HttpRequest, key: str | None) -> User | None:
        user = request.user
        if not isinstance(user, User) or not user.is_authenticated:
            return None
        if check_csrf(request) is not None:
            raise CsrfFailed
        return user


class TokenAuth(HttpBearer):
    """``Authorization: Bearer <token>`` (``tasks_app.tokens``); no CSRF, it is no cookie.

    Raises :class:`InvalidToken` for a token that is unknown or revoked, so a script with a
    bad token is told so instead of falling back to a session it may not have.
    """

    def authenticate(self, request: HttpRequest, token: str) -> User:
        user = tokens.api_token_authenticate(token)
        if user is None:
            raise InvalidToken
        return user


class JobsAPI(NinjaAPI):
    """The API, whose OpenAPI document describes ``POST /api/jobs/``'s body per job kind
    (``tasks_app.openapi``), from the kinds registered when the document is asked for."""

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
#: Token management is for the person at the page, never for a script holding a token.
session_only = [SessionCsrfAuth()]


def request_user(request: HttpRequest) -> User:
    """The user the request was authenticated as (by either scheme)."""
    user = getattr(request, "auth", None)
    assert isinstance(user, User), "operation without authentication"
    return user


# --- errors ----------------------------------------------------------------------------------


def error_response(
    request: HttpRequest, status: HTTPStatus, code: str, message: str, fields: dict[str, list[str]] | None = None
) -> HttpResponse:
    """The JSON error body ``{"code", "message"[, "fields"]}`` with ``status``."""
    body: dict[str, Any] = {"code": code, "message": message}
    if fields is not None:
        body["fields"] = fields
    return api.create_response(request, body, status=status)


@api.exception_handler(ApplicationError)
def on_application_error(request: HttpRequest, exc: ApplicationError) -> HttpResponse:
    """A service's error: its code, with the status of :data:`STATUS_BY_CODE` (a code missing
    there is a bug: answered as ``internal``)."""
    status = STATUS_BY_CODE.get(exc.code)
    if status is None:
        return on_exception(request, exc)
    fields = exc.fields if isinstance(exc, InvalidParams) else None
    return error_response(request, status, exc.code, exc.message, fields)


def _field_name(loc: list[Any]) -> str:
    # ninja's loc: (source, parameter, *path inside it); a single body parameter is the body.
    source, *rest = [str(part) for part in loc] or [BODY_FIELD]
    path = rest[1:] if source == BODY_FIELD else rest
    return ".".join(path) or source


@api.exception_handler(ValidationError)
def on_validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    """Body or query of the wrong shape: 400 ``invalid_message`` with ``fields``."""
    fields: dict[str, list[str]] = {}
    for error in exc.errors:
        fields.setdefault(_field_name(list(error.get("loc", ()))), []).append(str(error.get("msg", "invalid")))
    listed = "; ".join(f"{name}: {', '.join(messages)}" for name, messages in fields.items())
    return error_response(
        request, HTTPStatus.BAD_REQUEST, CODE_INVALID_MESSAGE, f"the request is not valid: {listed}", fields
    )


@api.exception_handler(HttpError)
def on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    """ninja raises ``HttpError`` (400) for a body that is not JSON: 400 ``invalid_json``."""
    if exc.status_code == HTTPStatus.BAD_REQUEST and isinstance(exc.__cause__, ValueError):
        return error_response(
            request,
            HTTPStatus.BAD_REQUEST,
            CODE_INVALID_JSON,
            "the request body is not valid JSON",
            {BODY_FIELD: ["not valid JSON"]},
        )
    return on_exception(request, exc)


@api.exception_handler(MultiPartParserError)
@api.exception_handler(BadRequest)
@api.exception_handler(SuspiciousOperation)
def on_unreadable_request(request: HttpRequest, exc: Exception) -> HttpResponse:
    """A body Django cannot parse as its ``Content-Type`` says (a multipart type without a
    boundary, too many fields): 400 ``invalid_message``. Django answers these 400 itself
    (``django/core/handlers/exception.py`` ``response_for_exception``), but ninja's handler of
    ``Exception`` below would see them first; they are raised as early as the CSRF check reads
    ``request.POST`` (``django/middleware/csrf.py`` ``_check_token``)."""
    logger.info("API request refused: unreadable body of %s %s: %s", request.method, request.path, exc)
    return error_response(
        request,
        HTTPStatus.BAD_REQUEST,
        CODE_INVALID_MESSAGE,
        f"the request body cannot be read as its Content-Type says: {exc}",
        {BODY_FIELD: ["unreadable body"]},
    )


@api.exception_handler(AuthenticationError)
def on_not_authenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    """Neither a session nor a bearer token: 401 ``not_authenticated``."""
    return _unauthorized(request, "log in, or send 'Authorization: Bearer <token>'")


@api.exception_handler(InvalidToken)
def on_invalid_token(request: HttpRequest, exc: InvalidToken) -> HttpResponse:
    """A bearer token that is unknown or revoked: 401 ``not_authenticated``."""
    return _unauthorized(request, "the API token is not valid (unknown or revoked)")


def _unauthorized(request: HttpRequest, message: str) -> HttpResponse:
    response = error_response(request, HTTPStatus.UNAUTHORIZED, CODE_NOT_AUTHENTICATED, message)
    response["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


@api.exception_handler(CsrfFailed)
def on_csrf_failed(request: HttpRequest, exc: CsrfFailed) -> HttpResponse:
    """A session request without a valid CSRF token: 403 ``csrf_failed``."""
    logger.info("API request refused: CSRF check failed for %s %s", request.method, request.path)
    return error_response(
        request,
        HTTPStatus.FORBIDDEN,
        CODE_CSRF_FAILED,
        "CSRF check failed: send the csrftoken cookie's value in the X-CSRFToken header",
    )


@api.exception_handler(Http404)
def on_not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    """Django's ``Http404``: 404 ``not_found``."""
    return error_response(request, HTTPStatus.NOT_FOUND, CODE_NOT_FOUND, "not found")


@api.exception_handler(Exception)
def on_exception(request: HttpRequest, exc: Exception) -> HttpResponse:
    """Anything unexpected: logged with its traceback, answered 500 ``internal`` without it."""
    # ninja calls handlers inside its own except block; exc_info names the exception anyway.
    logger.exception("internal error in %s %s", request.method, request.path, exc_info=exc)  # noqa: LOG004
    return error_response(request, HTTPStatus.INTERNAL_SERVER_ERROR, CODE_INTERNAL, INTERNAL_MESSAGE)


# --- jobs ------------------------------------------------------------------------------------

JobIdPath = Annotated[str, Path(description="The job's id (a UUID; anything else is 404 not_found).")]


@api.post(
    "/jobs/",
    response=responses(
        {HTTPStatus.CREATED: JobObject},
        HTTPStatus.BAD_REQUEST,
        HTTPStatus.FORBIDDEN,
        HTTPStatus.UNPROCESSABLE_ENTITY,
        HTTPStatus.TOO_MANY_REQUESTS,
    ),
    exclude_unset=True,
    tags=["jobs"],
    summary="Start a job",
)
def job_start(request: HttpRequest, payload: JobStartRequest) -> Status[dict[str, Any]]:
    """Validate the kind's parameters, create a ``pending`` job and dispatch its work.

    201 with the job object (also when ``idempotency_key`` matched an existing job, which is
    then answered as it is now). Follow its progress over the WebSocket or with
    ``GET /api/jobs/{id}/``.
    """
    job = services.job_start(
        owner=request_user(request),
        kind=payload.kind,
        params=payload.params,
        idempotency_key=payload.idempotency_key,
    )
    return Status(HTTPStatus.CREATED, selectors.job_snapshot(job))


@api.get(
    "/jobs/",
    response=responses({HTTPStatus.OK: JobPageOut}, HTTPStatus.BAD_REQUEST),
    exclude_unset=True,
    tags=["jobs"],
    summary="List my jobs",
)
def job_list(request: HttpRequest, page: Query[PageIn]) -> dict[str, Any]:
    """The user's jobs, newest first, ``limit`` (1..100, default 20) from ``offset``
    (0..``LIST_OFFSET_MAX``), with ``count``, the number of all the user's jobs. Any other
    query key is refused (400 ``invalid_message``)."""
    # ninja passes only the schema's keys to it (ninja/params/models.py ``_map_data_paths``),
    # so ``extra="forbid"`` never sees an unknown one: refuse those here.
    unknown = sorted(set(request.GET) - set(PageIn.model_fields))
    if unknown:
        raise ValidationError(
            [{"loc": ("query", name), "msg": "unknown query parameter", "type": "extra_forbidden"} for name in unknown]
        )
    # The id breaks ties of created_at, so pages never overlap or skip a job.
    jobs = selectors.jobs_of(request_user(request)).order_by("-created_at", "-pk")
    return {
        "count": jobs.count(),
        "limit": page.limit,
        "offset": page.offset,
        "items": [selectors.job_snapshot(job) for job in jobs[page.offset : page.offset + page.limit]],
    }


@api.get(
    "/jobs/{job_id}/",
    response=responses({HTTPStatus.OK: JobObject}, HTTPStatus.NOT_FOUND),
    exclude_unset=True,
    tags=["jobs"],
    summary="Read a job",
)
def job_read(request: HttpRequest, job_id: JobIdPath) -> dict[str, Any]:
    """The job object as it is now; 404 for an unknown id or another user's job."""
    return selectors.job_snapshot(selectors.job_get(owner=request_user(request), job_id=job_id))


@api.post(
    "/jobs/{job_id}/cancel/",
    response=responses({HTTPStatus.OK: JobObject}, HTTPStatus.FORBIDDEN, HTTPStatus.NOT_FOUND, HTTPStatus.CONFLICT),
    exclude_unset=True,
    tags=["jobs"],
    summary="Cancel a job",
)
def job_cancel(request: HttpRequest, job_id: JobIdPath) -> dict[str, Any]:
    """Cancel: a pending job is ``cancelled`` at once, a running one becomes ``cancelling``
    (the next poll ends it). 409 ``not_cancellable`` once the job is final."""
    return selectors.job_snapshot(services.job_cancel(owner=request_user(request), job_id=job_id))


# --- tokens ----------------------------------------------------------------------------------


def _last_used(token: ApiToken) -> str | None:
    return token.last_used_at.isoformat() if token.last_used_at is not None else None


@api.post(
    "/tokens/",
    auth=session_only,
    response=responses({HTTPStatus.CREATED: TokenCreatedOut}, HTTPStatus.BAD_REQUEST, HTTPStatus.FORBIDDEN),
    tags=["tokens"],
    summary="Create an API token",
)
def token_create(request: HttpRequest, payload: TokenCreateIn | None = None) -> Status[dict[str, Any]]:
    """Create a token for the logged-in user (session only) and answer it this once;
    only its SHA-256 digest is kept."""
    name = payload.name if payload is not None else ""
    token, raw = tokens.api_token_create(user=request_user(request), name=name)
    body = {"token": raw, "prefix": token.prefix, "name": token.name, "created_at": token.created_at.isoformat()}
    return Status(HTTPStatus.CREATED, body)


@api.get(
    "/tokens/",
    auth=session_only,
    response=responses({HTTPStatus.OK: TokenListOut}),
    tags=["tokens"],
    summary="List my API tokens",
)
def token_list(request: HttpRequest) -> dict[str, Any]:
    """The user's tokens, newest first: prefix, name, created and last used, never the secret."""
    items = [
        {"prefix": t.prefix, "name": t.name, "created_at": t.created_at.isoformat(), "last_used_at": _last_used(t)}
        for t in tokens.api_token_list(user=request_user(request))
    ]
    return {"count": len(items), "items": items}


@api.delete(
    "/tokens/{prefix}/",
    auth=session_only,
    response=responses({HTTPStatus.NO_CONTENT: None}, HTTPStatus.FORBIDDEN, HTTPStatus.NOT_FOUND),
    tags=["tokens"],
    summary="Revoke an API token",
)
def token_revoke(request: HttpRequest, prefix: str) -> Status[None]:
    """Revoke one of the user's tokens by its prefix: 204, and it stops working at once."""
    tokens.api_token_revoke(prefix=prefix, user=request_user(request))
    return Status(HTTPStatus.NO_CONTENT, None)
