"""HTTP views: the page at ``/`` and uploads at ``/uploads/``.

Errors are JSON ``{"code": CODE, "message": "..."}`` with a 4xx status, never an HTML page
or a traceback, so the page's script can show them.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.views.csrf import csrf_failure as django_csrf_failure

from tasks_app import services
from tasks_app.errors import CODE_INVALID_PARAMS

logger = logging.getLogger(__name__)

CODE_NOT_AUTHENTICATED: Final = "not_authenticated"
CODE_TOO_LARGE: Final = "too_large"
CODE_METHOD_NOT_ALLOWED: Final = "method_not_allowed"
CODE_CSRF_FAILED: Final = "csrf_failed"
#: Room for the multipart envelope around the file when checking Content-Length, bytes.
MULTIPART_OVERHEAD_BYTES: Final = 64 * 1024


def _error(status: int, code: str, message: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"code": code, "message": message, **extra}, status=status)


@login_required
def index(request: HttpRequest) -> HttpResponse:
    """The page: start jobs, upload CSV files, watch every job's live progress."""
    config = {
        "wsPath": "/ws/jobs/",
        "uploadUrl": "/uploads/",
        "csrfToken": get_token(request),
        "uploadMaxBytes": settings.UPLOAD_MAX_BYTES,
    }
    return render(request, "jobs/index.html", {"jobs_config": config})


def _too_large(size: int) -> JsonResponse:
    limit = settings.UPLOAD_MAX_BYTES
    return _error(
        413,
        CODE_TOO_LARGE,
        f"the file is too large: {size:,} bytes; the limit is {limit:,} bytes (UPLOAD_MAX_BYTES)",
        limit=limit,
    )


def upload_create_view(request: HttpRequest) -> JsonResponse:
    """``POST /uploads/`` (login and CSRF required), multipart field ``file``.

    201 ``{"upload_id", "name", "size"}``; 401 not logged in; 405 not POST; 400 no file or
    an empty one; 413 over ``UPLOAD_MAX_BYTES`` (checked on Content-Length before the body
    is parsed, and on the file itself).
    """
    if not request.user.is_authenticated:
        return _error(401, CODE_NOT_AUTHENTICATED, "log in to upload files")
    if request.method != "POST":
        return _error(405, CODE_METHOD_NOT_ALLOWED, "use POST with a multipart field 'file'")
    declared = int(request.META.get("CONTENT_LENGTH") or 0)
    if declared > settings.UPLOAD_MAX_BYTES + MULTIPART_OVERHEAD_BYTES:
        return _too_large(declared)
    file = request.FILES.get("file")
    if file is None:
        return _error(
            400,
            CODE_INVALID_PARAMS,
            "send the file in the multipart field 'file'",
            fields={"file": ["this field is required"]},
        )
    if file.size is None or file.size == 0:
        return _error(400, CODE_INVALID_PARAMS, "the file is empty", fields={"file": ["the file is empty"]})
    if file.size > settings.UPLOAD_MAX_BYTES:
        return _too_large(file.size)
    assert isinstance(request.user, User)
    upload = services.upload_create(owner=request.user, file=file)
    return JsonResponse({"upload_id": str(upload.id), "name": upload.name, "size": upload.size}, status=201)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF failures: JSON for the upload endpoint, Django's page elsewhere."""
    if request.path.startswith("/uploads/"):
        logger.info("upload refused: CSRF check failed (%s)", reason)
        return _error(403, CODE_CSRF_FAILED, f"CSRF check failed: {reason}; reload the page and try again")
    return django_csrf_failure(request, reason)
