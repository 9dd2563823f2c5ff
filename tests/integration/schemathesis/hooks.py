"""Schemathesis hooks of the API fuzz test (loaded with ``SCHEMATHESIS_HOOKS``).

Two things the OpenAPI document states in words but a generator cannot know:

- a session request with an unsafe method also needs Django's CSRF token (cookie
  ``csrftoken`` and header ``X-CSRFToken``, ``tasks_app.api.auth.SessionCsrfAuth``): added to every request
  that carries the session cookie, so requests without the session stay without it;
- the ``upload_id`` of ``csv_profile`` and ``csv_profile_parallel`` must be one of the user's
  uploads (``POST /uploads/`` is not part of this API): a generated id is replaced by the fuzz user's real upload.

Values come from the environment: ``FUZZ_CSRF_TOKEN``, ``FUZZ_UPLOAD_ID``.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from typing import Any

import schemathesis

SESSION_COOKIE = "sessionid"
CSRF_COOKIE = "csrftoken"
CSRF_HEADER = "X-CSRFToken"
#: Kinds whose parameters name an upload.
UPLOAD_KINDS = frozenset({"csv_profile", "csv_profile_parallel"})


@schemathesis.hook
def before_call(context: schemathesis.HookContext, case: schemathesis.Case, kwargs: dict[str, Any]) -> None:
    # Negative cases may hold a non-mapping in a container: those are left as generated.
    cookies, headers = case.cookies, case.headers
    unsafe = case.method.upper() not in ("GET", "HEAD", "OPTIONS")
    if unsafe and isinstance(cookies, MutableMapping) and cookies.get(SESSION_COOKIE):
        cookies[CSRF_COOKIE] = os.environ["FUZZ_CSRF_TOKEN"]
        if isinstance(headers, MutableMapping):
            headers[CSRF_HEADER] = os.environ["FUZZ_CSRF_TOKEN"]
    body = case.body
    params = body.get("params") if isinstance(body, dict) and str(body.get("kind")) in UPLOAD_KINDS else None
    if isinstance(params, dict) and isinstance(params.get("upload_id"), str):
        params["upload_id"] = os.environ["FUZZ_UPLOAD_ID"]
