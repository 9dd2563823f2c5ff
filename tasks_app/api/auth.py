"""Authentication of ``/api/``: Django's session with CSRF for unsafe methods, or a bearer token.

Each scheme raises its own exception (:class:`CsrfFailed`, :class:`InvalidToken`) for a request
it refuses; ``tasks_app.api.errors`` answers them (403 ``csrf_failed``, 401 ``not_authenticated``).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import User
from django.http import HttpRequest
from ninja.security import HttpBearer
from ninja.security.apikey import APIKeyCookie
from ninja.utils import check_csrf

from tasks_app import tokens


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


#: Token management is for the person at the page, never for a script holding a token.
session_only = [SessionCsrfAuth()]


def request_user(request: HttpRequest) -> User:
    """The user the request was authenticated as (by either scheme)."""
    user = getattr(request, "auth", None)
    assert isinstance(user, User), "operation without authentication"
    return user
