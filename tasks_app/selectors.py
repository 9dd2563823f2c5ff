"""Reads of jobs, and the protocol's job object (DESIGN.md "WebSocket protocol")."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from tasks_app.errors import JobNotFound
from tasks_app.models import Job


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def percent_of(current: int, total: int | None) -> float | None:
    """``current / total`` in percent, one decimal, capped to 0..100; None if total unknown or 0."""
    if not total:
        return None
    return round(min(100.0, max(0.0, current * 100.0 / total)), 1)


def job_snapshot(job: Job) -> dict[str, Any]:
    """The job object every job-bearing frame carries (JSON- and msgpack-serialisable)."""
    return {
        "id": str(job.id),
        "kind": job.kind,
        "state": job.state,
        "params": job.params,
        "progress": {
            "current": job.progress_current,
            "total": job.progress_total,
            "percent": percent_of(job.progress_current, job.progress_total),
            "message": job.progress_message,
        },
        "result": job.result,
        "error": job.error or None,
        "seq": job.seq,
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
    }


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
