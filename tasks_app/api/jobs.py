"""``/api/jobs/``: start, list, read and cancel the user's jobs (the WebSocket's job operations).

The same services and selectors as ``realtime.consumers``, answering the same job object
(``selectors.job_snapshot``, declared by ``tasks_app.jobobject.JobObject``).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated, Any

from django.http import HttpRequest
from ninja import Path, Query, Router, Status
from ninja.errors import ValidationError

from tasks_app import selectors, services
from tasks_app.api.auth import request_user
from tasks_app.api.errors import responses
from tasks_app.api.schemas import JobPageOut, PageIn
from tasks_app.jobobject import JobObject, JobStartRequest

# Operation ids are spelled out: ninja derives them from the function's module, which was
# ``tasks_app.api`` before the API became a package, and clients may have generated code from them.
router = Router(tags=["jobs"])

JobIdPath = Annotated[str, Path(description="The job's id (a UUID; anything else is 404 not_found).")]


@router.post(
    "/",
    response=responses(
        {HTTPStatus.CREATED: JobObject},
        HTTPStatus.BAD_REQUEST,
        HTTPStatus.FORBIDDEN,
        HTTPStatus.UNPROCESSABLE_ENTITY,
        HTTPStatus.TOO_MANY_REQUESTS,
    ),
    exclude_unset=True,
    summary="Start a job",
    operation_id="tasks_app_api_job_start",
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


@router.get(
    "/",
    response=responses({HTTPStatus.OK: JobPageOut}, HTTPStatus.BAD_REQUEST),
    exclude_unset=True,
    summary="List my jobs",
    operation_id="tasks_app_api_job_list",
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


@router.get(
    "/{job_id}/",
    response=responses({HTTPStatus.OK: JobObject}, HTTPStatus.NOT_FOUND),
    exclude_unset=True,
    summary="Read a job",
    operation_id="tasks_app_api_job_read",
)
def job_read(request: HttpRequest, job_id: JobIdPath) -> dict[str, Any]:
    """The job object as it is now; 404 for an unknown id or another user's job."""
    return selectors.job_snapshot(selectors.job_get(owner=request_user(request), job_id=job_id))


@router.post(
    "/{job_id}/cancel/",
    response=responses({HTTPStatus.OK: JobObject}, HTTPStatus.FORBIDDEN, HTTPStatus.NOT_FOUND, HTTPStatus.CONFLICT),
    exclude_unset=True,
    summary="Cancel a job",
    operation_id="tasks_app_api_job_cancel",
)
def job_cancel(request: HttpRequest, job_id: JobIdPath) -> dict[str, Any]:
    """Cancel: a pending job is ``cancelled`` at once, a running one becomes ``cancelling``
    (the next poll ends it). 409 ``not_cancellable`` once the job is final."""
    return selectors.job_snapshot(services.job_cancel(owner=request_user(request), job_id=job_id))
