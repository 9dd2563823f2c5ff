"""``/api/tokens/``: create, list and revoke the user's API tokens, from a session only
(``tasks_app.tokens`` keeps only their digest)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from django.http import HttpRequest
from ninja import Router, Status

from tasks_app import tokens
from tasks_app.api.auth import request_user, session_only
from tasks_app.api.errors import responses
from tasks_app.api.schemas import TokenCreatedOut, TokenCreateIn, TokenListOut
from tasks_app.models import ApiToken

# Operation ids are spelled out: see tasks_app.api.jobs.
router = Router(tags=["tokens"], auth=session_only)


def _last_used(token: ApiToken) -> str | None:
    return token.last_used_at.isoformat() if token.last_used_at is not None else None


@router.post(
    "/",
    response=responses({HTTPStatus.CREATED: TokenCreatedOut}, HTTPStatus.BAD_REQUEST, HTTPStatus.FORBIDDEN),
    summary="Create an API token",
    operation_id="tasks_app_api_token_create",
)
def token_create(request: HttpRequest, payload: TokenCreateIn | None = None) -> Status[dict[str, Any]]:
    """Create a token for the logged-in user (session only) and answer it this once;
    only its SHA-256 digest is kept."""
    name = payload.name if payload is not None else ""
    token, raw = tokens.api_token_create(user=request_user(request), name=name)
    body = {"token": raw, "prefix": token.prefix, "name": token.name, "created_at": token.created_at.isoformat()}
    return Status(HTTPStatus.CREATED, body)


@router.get(
    "/",
    response=responses({HTTPStatus.OK: TokenListOut}),
    summary="List my API tokens",
    operation_id="tasks_app_api_token_list",
)
def token_list(request: HttpRequest) -> dict[str, Any]:
    """The user's tokens, newest first: prefix, name, created and last used, never the secret."""
    items = [
        {"prefix": t.prefix, "name": t.name, "created_at": t.created_at.isoformat(), "last_used_at": _last_used(t)}
        for t in tokens.api_token_list(user=request_user(request))
    ]
    return {"count": len(items), "items": items}


@router.delete(
    "/{prefix}/",
    response=responses({HTTPStatus.NO_CONTENT: None}, HTTPStatus.FORBIDDEN, HTTPStatus.NOT_FOUND),
    summary="Revoke an API token",
    operation_id="tasks_app_api_token_revoke",
)
def token_revoke(request: HttpRequest, prefix: str) -> Status[None]:
    """Revoke one of the user's tokens by its prefix: 204, and it stops working at once."""
    tokens.api_token_revoke(prefix=prefix, user=request_user(request))
    return Status(HTTPStatus.NO_CONTENT, None)
