"""HTTP views: the dashboard at ``/``, one job's page at ``/jobs/<id>/``, uploads at ``/uploads/``.

The pages render every job on them from its snapshot (``selectors.job_snapshot``), so they
show the current state before the script runs; the script then follows them live.
Upload errors are JSON ``{"code": CODE, "message": "..."}`` with a 4xx status, never an HTML
page or a traceback, so the page's script can show them.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from typing import Any, Final

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest, HttpResponse, HttpResponsePermanentRedirect, JsonResponse
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.templatetags.static import static
from django.urls import reverse
from django.utils import timezone
from django.views.csrf import csrf_failure as django_csrf_failure
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from tasks_app import selectors, services
from tasks_app.errors import CODE_INVALID_PARAMS, JobNotFound
from tasks_app.formatting import human_bytes
from tasks_app.models import FINAL_STATES
from tasks_app.uploadlimit import UploadLimit

logger = logging.getLogger(__name__)

CODE_NOT_AUTHENTICATED: Final = "not_authenticated"
CODE_TOO_LARGE: Final = "too_large"
CODE_LENGTH_REQUIRED: Final = "length_required"
CODE_METHOD_NOT_ALLOWED: Final = "method_not_allowed"
CODE_CSRF_FAILED: Final = "csrf_failed"
#: Room for the multipart envelope around the file when checking Content-Length, bytes.
MULTIPART_OVERHEAD_BYTES: Final = 64 * 1024
#: Jobs per dashboard page.
DASHBOARD_PAGE_SIZE: Final = 20
#: Stands for the job id in the job page URL handed to the script.
_JOB_ID_PLACEHOLDER: Final = uuid.UUID(int=0)
SHORT_ID_LENGTH: Final = 8
#: Kinds whose progress counts bytes: shown as sizes, as the page's script shows them.
BYTE_KINDS: Final = frozenset({"csv_profile"})
#: The site's icon (``/favicon.ico`` redirects to it).
FAVICON: Final = "jobs/favicon.svg"


def _error(status: int, code: str, message: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"code": code, "message": message, **extra}, status=status)


def _page_config(request: HttpRequest, **extra: Any) -> dict[str, Any]:
    """What the script needs (``#jobs-config``): URLs, the CSRF token, limits, the server's clock."""
    return {
        "wsPath": "/ws/jobs/",
        "uploadUrl": reverse("upload-create"),
        "jobUrl": reverse("job-detail", kwargs={"job_id": _JOB_ID_PLACEHOLDER}),
        "jobUrlPlaceholder": str(_JOB_ID_PLACEHOLDER),
        "csrfToken": get_token(request),
        "uploadMaxBytes": settings.UPLOAD_MAX_BYTES,
        "serverNow": timezone.now().isoformat(),
        **extra,
    }


def _counts(kind: str, current: int, total: int | None, *, final: bool) -> str:
    """``"1,234 / 5,000"``, ``"12.3 MB of 31.1 MB"`` (byte kinds), ``"42 (total unknown)"``;
    a final job never says "total unknown" (only what was done, if anything)."""
    show = human_bytes if kind in BYTE_KINDS else "{:,}".format
    if total is not None:
        return f"{show(current)}{' of ' if kind in BYTE_KINDS else ' / '}{show(total)}"
    if not final:
        return f"{show(current)} (total unknown)"
    return show(current) if current else ""


def _job_card(snapshot: dict[str, Any], *, link: bool) -> dict[str, Any]:
    """What ``jobs/_job_card.html`` shows of a job before the script takes over; the same
    rules as the script's cards (a final card has a still bar, no "total unknown", and a
    failed one its error instead of the last message)."""
    job_id = snapshot["id"]
    state = snapshot["state"]
    final = state in FINAL_STATES
    progress = snapshot["progress"]
    percent = 100.0 if state == "succeeded" else progress["percent"]
    if percent is None and final:
        percent_value: str | None = "0"  # a still, empty bar: no moving stripe on a final card
    else:
        percent_value = None if percent is None else f"{percent:g}"
    current, total = progress["current"], progress["total"]
    result = snapshot["result"]
    created = snapshot["created_at"]
    title = f"{snapshot['title']} · {job_id[:SHORT_ID_LENGTH]}"
    return {
        "id": job_id,
        "kind": snapshot["kind"],
        "state": state,
        "title": title,
        "summary": snapshot["summary"],
        "url": reverse("job-detail", kwargs={"job_id": job_id}) if link else "",
        "created_at": created,
        "created": dt.datetime.fromisoformat(created) if created else None,
        "percent": percent_value,
        "percent_text": "" if percent is None else f"{int(percent)}%",
        "counts": _counts(snapshot["kind"], current, total, final=final),
        "message": "" if state == "failed" else progress["message"],
        "error": snapshot["error"] or "",
        "result_text": json.dumps(result, indent=2, ensure_ascii=False) if result is not None else "",
    }


def _blank_card(*, link: bool) -> dict[str, Any]:
    """The card the script clones and fills (``<template id="job-card-template">``): every
    field empty, and a link (filled by the script) when the cards link to their job page."""
    return {
        "id": "",
        "kind": "",
        "state": "",
        "title": "",
        "summary": "",
        "url": reverse("job-detail", kwargs={"job_id": _JOB_ID_PLACEHOLDER}) if link else "",
        "created_at": "",
        "created": None,
        "percent": None,
        "percent_text": "",
        "counts": "",
        "message": "",
        "error": "",
        "result_text": "",
    }


@login_required
def index(request: HttpRequest) -> HttpResponse:
    """The dashboard: start jobs, upload CSV files, and the user's jobs, active first, then
    the history, ``DASHBOARD_PAGE_SIZE`` a page (``?page=N``), each followed live by the script."""
    page = selectors.job_dashboard_page(owner=request.user, page=request.GET.get("page"), per_page=DASHBOARD_PAGE_SIZE)
    snapshots = [selectors.job_snapshot(job) for job in page.object_list]
    config = _page_config(request, mode="dashboard", page=page.number, pageSize=DASHBOARD_PAGE_SIZE)
    context = {
        "jobs_config": config,
        "jobs_data": snapshots,
        "cards": [_job_card(s, link=True) for s in snapshots],
        "blank_card": _blank_card(link=True),
        "page_obj": page,
    }
    return render(request, "jobs/index.html", context)


@login_required
def job_detail(request: HttpRequest, job_id: uuid.UUID) -> HttpResponse:
    """One job of the user, live (``/jobs/<id>/``); 404 for unknown ids and other users' jobs
    alike, so ids do not leak."""
    try:
        job = selectors.job_get(owner=request.user, job_id=job_id)
    except JobNotFound:
        raise Http404("no such job") from None
    snapshot = selectors.job_snapshot(job)
    card = _job_card(snapshot, link=False)
    context = {
        "jobs_config": _page_config(request, mode="detail", jobId=snapshot["id"]),
        "jobs_data": [snapshot],
        "card": card,
        "blank_card": _blank_card(link=False),
    }
    return render(request, "jobs/detail.html", context)


def favicon(request: HttpRequest) -> HttpResponsePermanentRedirect:
    """``/favicon.ico``, which browsers ask for on pages without an icon link (the admin,
    Swagger): a permanent redirect to the site's SVG icon among the static files."""
    return HttpResponsePermanentRedirect(static(FAVICON))


def _too_large(size: int) -> JsonResponse:
    limit = settings.UPLOAD_MAX_BYTES
    return _error(
        413,
        CODE_TOO_LARGE,
        f"the file is too large: {size:,} bytes; the limit is {limit:,} bytes (UPLOAD_MAX_BYTES)",
        limit=limit,
    )


@csrf_exempt  # the CSRF check runs below, once the upload handlers are in place
def upload_create_view(request: HttpRequest) -> JsonResponse:
    """``POST /uploads/`` (login and CSRF required), multipart field ``file``.

    201 ``{"upload_id", "name", "size"}``; 401 not logged in; 405 not POST; 411 no
    Content-Length (a chunked body); 400 no file or an empty one; 413 over
    ``UPLOAD_MAX_BYTES``: checked on Content-Length before the body is parsed, then while the
    file is read (``tasks_app.uploadlimit``), and on the file itself.
    """
    if not request.user.is_authenticated:
        return _error(401, CODE_NOT_AUTHENTICATED, "log in to upload files")
    if request.method != "POST":
        return _error(405, CODE_METHOD_NOT_ALLOWED, "use POST with a multipart field 'file'")
    if not request.META.get("CONTENT_LENGTH"):
        # Django reads a body only up to its Content-Length (django/http/request.py
        # LimitedStream): without one a chunked upload would look empty.
        return _error(
            411,
            CODE_LENGTH_REQUIRED,
            "send the file with a Content-Length header; chunked uploads are not supported",
        )
    declared = int(request.META["CONTENT_LENGTH"])
    if declared > settings.UPLOAD_MAX_BYTES + MULTIPART_OVERHEAD_BYTES:
        return _too_large(declared)
    # Upload handlers must be set before the body is parsed, and CsrfViewMiddleware parses it
    # (request.POST): hence csrf_exempt here and csrf_protect inside (Django docs, "Modifying
    # upload handlers on the fly").
    limit = UploadLimit(settings.UPLOAD_MAX_BYTES, request)
    request.upload_handlers.insert(0, limit)
    return _upload_create(request, limit)


@csrf_protect
def _upload_create(request: HttpRequest, limit: UploadLimit) -> JsonResponse:
    file = request.FILES.get("file")
    if limit.exceeded:
        return _too_large(limit.received)
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
