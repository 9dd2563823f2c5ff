"""Reads of jobs, and the protocol's job object built from a row (``tasks_app.jobobject``)."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.paginator import Page, Paginator
from django.db.models import Case, IntegerField, QuerySet, Value, When

from tasks_app.errors import JobNotFound
from tasks_app.jobobject import JobObject, ProgressObject, RetryingObject
from tasks_app.kinds import REGISTRY
from tasks_app.kinds.base import default_title
from tasks_app.models import ACTIVE_STATES, Job, JobState
from tasks_app.rate import eta_seconds, progress_rate


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def percent_of(current: int, total: int | None) -> float | None:
    """``current / total`` in percent, one decimal, capped to 0..100; None if total unknown or 0."""
    if not total:
        return None
    return round(min(100.0, max(0.0, current * 100.0 / total)), 1)


def job_rate(job: Job) -> tuple[float | None, float | None]:
    """``(rate, eta_seconds)`` of the job: units per second and seconds left
    (``tasks_app.rate``). A final job gets its average rate over the run, and no ETA
    (0 when it succeeded)."""
    if job.is_final:
        rate = None
        if job.started_at is not None and job.finished_at is not None:
            run_s = (job.finished_at - job.started_at).total_seconds()
            rate = round(job.progress_current / run_s, 3) if run_s > 0 and job.progress_current else None
        return rate, (0.0 if job.state == JobState.SUCCEEDED else None)
    rate = progress_rate(job.progress_samples or [])
    return rate, eta_seconds(job.progress_current, job.progress_total, rate)


def job_object(job: Job) -> JobObject:
    """The :class:`~tasks_app.jobobject.JobObject` of ``job`` as it is now.

    ``title`` is what people call the kind (``JobKind.title``), ``summary`` the parameters in a
    few words (``JobKind.summary``; ``""`` when the kind gives none or is no longer
    installed), ``progress.rate``/``eta_seconds`` come from ``tasks_app.rate``, ``retrying``
    from the kind's state.
    """
    rate, eta = job_rate(job)
    kind = REGISTRY.get(job.kind)  # a job of a kind no longer installed is still shown
    retrying = job.kind_state.get("retrying")
    return JobObject(
        id=str(job.id),
        kind=job.kind,
        title=kind.title if kind is not None else default_title(job.kind),
        summary=kind.summary(job.params) if kind is not None else "",
        state=JobState(job.state),
        params=job.params,
        progress=ProgressObject(
            current=job.progress_current,
            total=job.progress_total,
            percent=percent_of(job.progress_current, job.progress_total),
            message=job.progress_message,
            rate=rate,
            eta_seconds=eta,
        ),
        retrying=RetryingObject.model_validate(retrying) if retrying is not None else None,
        result=job.result,
        error=job.error or None,
        seq=job.seq,
        created_at=job.created_at.isoformat(),
        started_at=_iso(job.started_at),
        finished_at=_iso(job.finished_at),
    )


def job_snapshot(job: Job) -> dict[str, Any]:
    """:func:`job_object` as the plain dict every job-bearing frame carries (JSON- and
    msgpack-serialisable; keys and meaning in ``tasks_app.jobobject.JobObject``)."""
    return job_object(job).model_dump(mode="json")


def jobs_of(owner: AbstractBaseUser | AnonymousUser) -> QuerySet[Job]:
    """Every job of ``owner``, newest first."""
    return Job.objects.filter(owner_id=owner.pk).order_by("-created_at")


def job_get(*, owner: AbstractBaseUser | AnonymousUser, job_id: uuid.UUID | str, for_update: bool = False) -> Job:
    """The owner's job with this id, row-locked when ``for_update`` (inside a transaction);
    raises :class:`JobNotFound` (also for others' jobs and for ids that are not UUIDs)."""
    jobs = jobs_of(owner).select_for_update() if for_update else jobs_of(owner)
    try:
        return jobs.get(id=uuid.UUID(str(job_id)))
    except (ValueError, Job.DoesNotExist):
        raise JobNotFound(job_id) from None


def job_list(*, owner: AbstractBaseUser | AnonymousUser, limit: int) -> list[Job]:
    """The owner's ``limit`` newest jobs, newest first (callers bound ``limit``)."""
    return list(jobs_of(owner)[:limit])


def job_dashboard_page(*, owner: AbstractBaseUser | AnonymousUser, page: int | str | None, per_page: int) -> Page[Job]:
    """One page (``per_page`` jobs) of the owner's dashboard: active jobs (pending, running,
    cancelling) first, then finished ones; newest first within each group.

    ``page`` is 1-based as it comes from ``?page=``: a missing or malformed number gives the
    first page, one past the end the last page (``Paginator.get_page``), so it never raises.
    """
    rank = Case(When(state__in=ACTIVE_STATES, then=Value(0)), default=Value(1), output_field=IntegerField())
    ordered = jobs_of(owner).order_by(rank.asc(), "-created_at", "-pk")
    return Paginator(ordered, per_page).get_page(page)
