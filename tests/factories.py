"""The test data factories (STYLE.md "Tests": test data comes from one module, not a
``make_job`` per test file): users, jobs written straight to the database, and jobs started
through the service layer as a view would start them.

Every factory writes to the test database, so a test calling one needs the ``db`` (or
``transactional_db``) fixture.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib.auth import get_user_model
from django.utils import timezone

from tasks_app import services
from tasks_app.models import FINAL_STATES, Job, JobState

#: Parameters of a :func:`make_job` job unless the test gives its own: a short simulated run.
SIMULATED_PARAMS: dict[str, Any] = {"step": 3, "interval_ms": 200}
#: The fields :func:`make_job_in_progress` adds: 30 of 100 done, seq 5, started now.
IN_PROGRESS: dict[str, Any] = {
    "params": {"step": 10, "interval_ms": 200},
    "progress_current": 30,
    "progress_total": 100,
    "progress_message": "step 3 of 10",
    "seq": 5,
}


def make_user(username: str, password: str | None = None, **fields: Any) -> Any:
    """A user ``username`` with ``password`` (default ``"<username>-password-1"``) and any other
    model fields (``is_staff=True``, ...)."""
    return get_user_model().objects.create_user(username, password=password or f"{username}-password-1", **fields)


def make_superuser(username: str, password: str | None = None) -> Any:
    """A superuser ``username`` with ``password`` (default ``"<username>-password-1"``)."""
    return get_user_model().objects.create_superuser(username, password=password or f"{username}-password-1")


def make_job(
    owner: Any,
    *,
    kind: str = "simulated",
    state: str = JobState.PENDING,
    params: dict[str, Any] | None = None,
    minutes_ago: int | None = None,
    **fields: Any,
) -> Job:
    """A job row of ``owner`` written directly (no task is sent): ``kind``, ``state``, ``params``
    (default :data:`SIMULATED_PARAMS`) and any other model ``fields``. A final state gets
    ``finished_at`` (now) unless given; ``minutes_ago`` backdates ``created_at`` by that many
    minutes (the dashboard's order)."""
    if state in FINAL_STATES:
        fields.setdefault("finished_at", timezone.now())
    job = Job.objects.create(
        owner=owner, kind=kind, state=state, params=dict(SIMULATED_PARAMS) if params is None else params, **fields
    )
    if minutes_ago is not None:
        Job.objects.filter(pk=job.pk).update(created_at=timezone.now() - dt.timedelta(minutes=minutes_ago))
    return job


def make_job_in_progress(owner: Any, state: str = JobState.RUNNING, **fields: Any) -> Job:
    """A simulated job part-way through (:data:`IN_PROGRESS`, ``started_at`` now) in ``state``;
    ``fields`` override any of those."""
    return make_job(owner, state=state, **{**IN_PROGRESS, "started_at": timezone.now(), **fields})


def start_simulated(owner: Any, **params: Any) -> Job:
    """A simulated job of ``owner`` started through ``services.job_start`` (validated, its
    ``run_job`` task sent): pending, nothing run yet."""
    return services.job_start(owner=owner, kind="simulated", params=params)


def run_job(job: Job) -> Job:
    """Run ``services.job_run`` for ``job`` in this process (the worker's first step); the job
    as it then is in the database."""
    services.job_run(job_id=job.id)
    job.refresh_from_db()
    return job


def start_job(owner: Any, kind: str, params: dict[str, Any]) -> Job:
    """A job started through the service layer (``services.job_start``, validation included)
    and then run in this process (:func:`run_job`). Raises what ``job_start`` raises for a bad
    kind or bad params."""
    return run_job(services.job_start(owner=owner, kind=kind, params=params))
