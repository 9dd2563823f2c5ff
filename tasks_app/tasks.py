"""Celery tasks: thin adapters that call services (DESIGN.md "The path of one job").

``run_job`` and the work tasks run on queue ``jobs``; ``poll_job`` on queue ``progress``
(routes in ``celeryconfig``). Arguments are ids and plain values only.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, shared_task
from celery.signals import worker_init, worker_process_init
from django.db import InterfaceError as DbInterfaceError
from django.db import OperationalError as DbOperationalError
from kombu.exceptions import OperationalError

from realtime import messaging
from tasks_app import services
from tasks_app.csv_profiler import NotCSVError, profile_csv
from tasks_app.kinds.base import Progress
from tasks_app.kinds.csv_profile import TASK_PROFILE_CSV
from tasks_app.models import Job, Upload
from tasks_app.progress import JobCancelled, ProgressRecorder

logger = logging.getLogger(__name__)

#: Broker or database hiccups (Redis restarting, SQLite busy, a dropped PostgreSQL
#: connection) are retried with exponential backoff, seconds: a poll that gave up would end
#: its chain. Every task is idempotent, so a retry is safe.
_RETRY: dict[str, Any] = {
    "autoretry_for": (OperationalError, ConnectionError, DbOperationalError, DbInterfaceError),
    "retry_backoff": 0.5,
    "retry_backoff_max": 30,
    "retry_jitter": True,
    "max_retries": 10,
}


@worker_init.connect
@worker_process_init.connect
def _send_through_one_loop(**kwargs: Any) -> None:
    # See realtime.messaging: one event loop (one Redis pool) per worker process.
    messaging.use_worker_loop()


@shared_task(name=services.TASK_RUN_JOB, **_RETRY)
def run_job(job_id: str) -> None:
    """Start the job's work and its poll chain (``services.job_run``)."""
    services.job_run(job_id=job_id)


@shared_task(name=services.TASK_POLL_JOB, ignore_result=True, **_RETRY)
def poll_job(job_id: str, poll_seq: int) -> None:
    """One countdown poll of the job (``services.job_poll``).

    Results are not stored: a job polls five times a second, and one result row per poll
    would cost a database write each and bury the admin's task list.
    """
    services.job_poll(job_id=job_id, poll_seq=poll_seq)


@shared_task(name=TASK_PROFILE_CSV, bind=True)
def profile_csv_task(self: Task, job_id: str) -> dict[str, Any] | None:
    """Profile the job's uploaded CSV file, recording bytes read as progress.

    Ends the job through ``services.job_succeed`` / ``services.job_fail``; a file that is not
    CSV fails the job with a readable error. Returns a short summary for the result backend.
    """
    job = Job.objects.filter(pk=job_id).first()
    if job is None or job.is_final:
        logger.info("profile_csv: job %s is gone or already ended; nothing to do", job_id)
        return None
    upload = Upload.objects.filter(pk=job.params["upload_id"]).first()
    if upload is None:
        services.job_fail(job_id=job_id, error="the uploaded file no longer exists")
        return None
    recorder = ProgressRecorder(job_id)

    def on_progress(done: int, size: int) -> None:
        recorder.set_progress(done, size, f"{done:,} of {size:,} bytes read")

    try:
        with upload.file.open("rb") as fileobj:
            result = profile_csv(
                fileobj,  # type: ignore[arg-type]  # Django's File proxies read() of a binary file
                size=upload.size,
                encoding=job.params.get("encoding", "utf-8"),
                delimiter=job.params.get("delimiter"),
                on_progress=on_progress,
            )
    except JobCancelled:
        # The job is ``cancelling``; its next poll ends it ``cancelled``.
        logger.info("profile_csv: job %s cancelled after %s progress writes", job_id, recorder.writes)
        return None
    except NotCSVError as exc:
        services.job_fail(job_id=job_id, error=f"{upload.name} is not a CSV file we can read: {exc}")
        return None
    except OSError as exc:
        logger.exception("profile_csv: cannot read upload %s for job %s", upload.pk, job_id)
        services.job_fail(job_id=job_id, error=f"could not read {upload.name}: {exc.strerror or exc}")
        return None
    except Exception:
        logger.exception("profile_csv: job %s failed unexpectedly (task %s)", job_id, self.request.id)
        services.job_fail(
            job_id=job_id,
            error=f"internal error while profiling {upload.name}; the worker log has the details "
            f"(task {self.request.id})",
        )
        raise
    result["file"] = upload.name
    services.job_succeed(job_id=job_id, result=result, progress=Progress(upload.size, upload.size, "profiled"))
    return {"rows": result["rows"], "bad_rows": result["bad_rows"], "columns": len(result["columns"])}
