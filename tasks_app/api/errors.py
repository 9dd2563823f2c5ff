"""Errors of ``/api/``: the application's error codes with an HTTP status each, declared per
status in the OpenAPI document, and the exception handlers that answer them.

Every error body is JSON ``{"code", "message"[, "fields"]}``, the codes those of the WebSocket
(``tasks_app.errors``). :func:`install` registers the handlers on an API; they answer with its
renderer (``NinjaAPI.create_response``), so each takes the API as its first argument.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, Final, Literal

from django.core.exceptions import BadRequest, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from ninja import Field, NinjaAPI, Schema
from ninja.errors import AuthenticationError, HttpError, ValidationError

from tasks_app.api.auth import CsrfFailed, InvalidToken
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

# --- schemas (one per status, each listing the codes it may carry) ---------------------------


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


# --- handlers --------------------------------------------------------------------------------


def error_response(
    api: NinjaAPI,
    request: HttpRequest,
    status: HTTPStatus,
    code: str,
    message: str,
    fields: dict[str, list[str]] | None = None,
) -> HttpResponse:
    """The JSON error body ``{"code", "message"[, "fields"]}`` with ``status``."""
    body: dict[str, Any] = {"code": code, "message": message}
    if fields is not None:
        body["fields"] = fields
    return api.create_response(request, body, status=status)


def on_application_error(api: NinjaAPI, request: HttpRequest, exc: ApplicationError) -> HttpResponse:
    """A service's error: its code, with the status of :data:`STATUS_BY_CODE` (a code missing
    there is a bug: answered as ``internal``)."""
    status = STATUS_BY_CODE.get(exc.code)
    if status is None:
        return on_exception(api, request, exc)
    fields = exc.fields if isinstance(exc, InvalidParams) else None
    return error_response(api, request, status, exc.code, exc.message, fields)


def _field_name(loc: list[Any]) -> str:
    # ninja's loc: (source, parameter, *path inside it); a single body parameter is the body.
    source, *rest = [str(part) for part in loc] or [BODY_FIELD]
    path = rest[1:] if source == BODY_FIELD else rest
    return ".".join(path) or source


def on_validation_error(api: NinjaAPI, request: HttpRequest, exc: ValidationError) -> HttpResponse:
    """Body or query of the wrong shape: 400 ``invalid_message`` with ``fields``."""
    fields: dict[str, list[str]] = {}
    for error in exc.errors:
        fields.setdefault(_field_name(list(error.get("loc", ()))), []).append(str(error.get("msg", "invalid")))
    listed = "; ".join(f"{name}: {', '.join(messages)}" for name, messages in fields.items())
    return error_response(
        api, request, HTTPStatus.BAD_REQUEST, CODE_INVALID_MESSAGE, f"the request is not valid: {listed}", fields
    )


def on_http_error(api: NinjaAPI, request: HttpRequest, exc: HttpError) -> HttpResponse:
    """ninja raises ``HttpError`` (400) for a body that is not JSON: 400 ``invalid_json``."""
    if exc.status_code == HTTPStatus.BAD_REQUEST and isinstance(exc.__cause__, ValueError):
        return error_response(
            api,
            request,
            HTTPStatus.BAD_REQUEST,
            CODE_INVALID_JSON,
            "the request body is not valid JSON",
            {BODY_FIELD: ["not valid JSON"]},
        )
    return on_exception(api, request, exc)


def on_unreadable_request(api: NinjaAPI, request: HttpRequest, exc: Exception) -> HttpResponse:
    """A body Django cannot parse as its ``Content-Type`` says (a multipart type without a
    boundary, too many fields): 400 ``invalid_message``. Django answers these 400 itself
    (``django/core/handlers/exception.py`` ``response_for_exception``), but ninja's handler of
    ``Exception`` below would see them first; they are raised as early as the CSRF check reads
    ``request.POST`` (``django/middleware/csrf.py`` ``_check_token``)."""
    logger.info("API request refused: unreadable body of %s %s: %s", request.method, request.path, exc)
    return error_response(
        api,
        request,
        HTTPStatus.BAD_REQUEST,
        CODE_INVALID_MESSAGE,
        f"the request body cannot be read as its Content-Type says: {exc}",
        {BODY_FIELD: ["unreadable body"]},
    )


def on_not_authenticated(api: NinjaAPI, request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    """Neither a session nor a bearer token: 401 ``not_authenticated``."""
    return _unauthorized(api, request, "log in, or send 'Authorization: Bearer <token>'")


def on_invalid_token(api: NinjaAPI, request: HttpRequest, exc: InvalidToken) -> HttpResponse:
    """A bearer token that is unknown or revoked: 401 ``not_authenticated``."""
    return _unauthorized(api, request, "the API token is not valid (unknown or revoked)")


def _unauthorized(api: NinjaAPI, request: HttpRequest, message: str) -> HttpResponse:
    response = error_response(api, request, HTTPStatus.UNAUTHORIZED, CODE_NOT_AUTHENTICATED, message)
    response["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


def on_csrf_failed(api: NinjaAPI, request: HttpRequest, exc: CsrfFailed) -> HttpResponse:
    """A session request without a valid CSRF token: 403 ``csrf_failed``."""
    logger.info("API request refused: CSRF check failed for %s %s", request.method, request.path)
    return error_response(
        api,
        request,
        HTTPStatus.FORBIDDEN,
        CODE_CSRF_FAILED,
        "CSRF check failed: send the csrftoken cookie's value in the X-CSRFToken header",
    )


def on_not_found(api: NinjaAPI, request: HttpRequest, exc: Http404) -> HttpResponse:
    """Django's ``Http404``: 404 ``not_found``."""
    return error_response(api, request, HTTPStatus.NOT_FOUND, CODE_NOT_FOUND, "not found")


def on_exception(api: NinjaAPI, request: HttpRequest, exc: Exception) -> HttpResponse:
    """Anything unexpected: logged with its traceback, answered 500 ``internal`` without it."""
    # ninja calls handlers inside its own except block; exc_info names the exception anyway.
    logger.exception("internal error in %s %s", request.method, request.path, exc_info=exc)  # noqa: LOG004
    return error_response(api, request, HTTPStatus.INTERNAL_SERVER_ERROR, CODE_INTERNAL, INTERNAL_MESSAGE)


#: The handler of each exception class. ninja answers an exception with the handler of the
#: first class of its MRO found here (``ninja/main.py`` ``_lookup_exception_handler``), so
#: ``Exception`` catches only what nothing nearer does, whatever the order.
HANDLERS: Final[dict[type[Exception], Callable[..., HttpResponse]]] = {
    ApplicationError: on_application_error,
    ValidationError: on_validation_error,
    HttpError: on_http_error,
    MultiPartParserError: on_unreadable_request,
    BadRequest: on_unreadable_request,
    SuspiciousOperation: on_unreadable_request,
    AuthenticationError: on_not_authenticated,
    InvalidToken: on_invalid_token,
    CsrfFailed: on_csrf_failed,
    Http404: on_not_found,
    Exception: on_exception,
}


def install(api: NinjaAPI) -> None:
    """Register :data:`HANDLERS` on ``api``, replacing ninja's defaults for those classes."""
    for exc_class, handler in HANDLERS.items():
        api.add_exception_handler(exc_class, functools.partial(handler, api))
