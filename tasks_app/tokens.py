"""API tokens for scripts: create, list, revoke, authenticate (``Authorization: Bearer <token>``).

A token is ``secrets.token_urlsafe(32)`` (43 URL-safe characters, 256 random bits). Only its
SHA-256 hex digest is stored (``ApiToken.key_hash``), so a token is shown once, when it is
created, and a request's token is found by looking up the digest of what it carried: the
database compares digests, never secrets. ``prefix`` (the token's first characters) names a
token in lists and in ``revoke`` without revealing it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from typing import Final

from django.contrib.auth.models import User
from django.db.models import Q, QuerySet
from django.utils import timezone

from tasks_app.errors import CODE_NOT_FOUND, ApplicationError, InvalidParams
from tasks_app.models import ApiToken

logger = logging.getLogger(__name__)

#: Random bytes in a token (``secrets.token_urlsafe``): 43 characters once encoded.
TOKEN_BYTES: Final = 32
#: Characters of the token kept in clear as its ``prefix`` (48 bits: unique in practice).
PREFIX_CHARS: Final = 8
#: A request's ``last_used_at`` is written at most this often per token.
LAST_USED_RESOLUTION: Final = dt.timedelta(minutes=1)
#: Longest token name, characters (``ApiToken.name``'s max_length).
NAME_MAX_CHARS: Final = 100
#: Anything longer than this cannot be one of our tokens; it is refused without a query.
RAW_MAX_CHARS: Final = 128


class ApiTokenNotFound(ApplicationError):
    """No token with this prefix (for this user): code ``not_found``."""

    code = CODE_NOT_FOUND

    def __init__(self, prefix: str) -> None:
        super().__init__(f"API token {prefix[: PREFIX_CHARS * 2]} not found")


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _new_raw_token() -> str:
    while True:
        raw = secrets.token_urlsafe(TOKEN_BYTES)
        prefix = raw[:PREFIX_CHARS]
        # A leading "-" would read as an option on the command line (`api_token revoke PREFIX`).
        if not prefix.startswith("-") and not ApiToken.objects.filter(prefix=prefix).exists():
            return raw


def api_token_create(*, user: User, name: str = "") -> tuple[ApiToken, str]:
    """Create a token for ``user``; returns the row and the token itself (shown this once).

    ``name`` (at most ``NAME_MAX_CHARS`` characters) says what the token is for. The token
    is 43 URL-safe characters; its first ``PREFIX_CHARS`` are the row's ``prefix``, unique
    among all tokens. Raises ``InvalidParams`` (field ``name``) for a name that is too long.
    """
    if len(name) > NAME_MAX_CHARS:
        raise InvalidParams({"name": [f"at most {NAME_MAX_CHARS} characters"]}, "the token name is too long")
    raw = _new_raw_token()
    token = ApiToken.objects.create(user=user, name=name, key_hash=_digest(raw), prefix=raw[:PREFIX_CHARS])
    logger.info("API token %s created for user %s", token.prefix, user.pk)
    return token, raw


def api_token_list(*, user: User) -> QuerySet[ApiToken]:
    """The tokens of ``user``, newest first (rows carry the digest, never the token)."""
    return ApiToken.objects.filter(user=user).order_by("-created_at", "-pk")


def api_token_revoke(*, prefix: str, user: User | None = None) -> ApiToken:
    """Delete the token with this ``prefix``; returns the deleted row (its ``pk`` is None).

    With ``user``, only that user's tokens are candidates (another user's token is
    ``ApiTokenNotFound``, like an unknown prefix); without, any user's (the management
    command). A revoked token stops authenticating at once.
    """
    tokens = ApiToken.objects.filter(prefix=prefix)
    if user is not None:
        tokens = tokens.filter(user=user)
    token = tokens.first()
    if token is None:
        raise ApiTokenNotFound(prefix)
    token.delete()
    logger.info("API token %s of user %s revoked", prefix, token.user_id)
    return token


def api_token_authenticate(raw: str) -> User | None:
    """The active user a request's token ``raw`` acts as, or None (unknown, revoked, inactive).

    Looks the token up by its SHA-256 digest and records ``last_used_at``, writing it at most
    once per ``LAST_USED_RESOLUTION`` per token so busy scripts do not write on every request.
    """
    if not raw or len(raw) > RAW_MAX_CHARS:
        return None
    token = ApiToken.objects.select_related("user").filter(key_hash=_digest(raw)).first()
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    ApiToken.objects.filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - LAST_USED_RESOLUTION), pk=token.pk
    ).update(last_used_at=now)
    return token.user
