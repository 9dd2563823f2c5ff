"""Every Celery option of the project (lowercase names), values from the environment.

Loaded by ``proj.celery`` with ``config_from_object("celeryconfig")``. Rules from
DESIGN.md "Celery rules": JSON only, started/extended results for the admin, task events
for Flower, two queues, and a poll countdown far below the broker's visibility timeout.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

#: Queue for starting jobs and for the jobs' own work (may be slow).
QUEUE_JOBS = "jobs"
#: Queue for the countdown polls only (short and cheap), so slow work never delays progress.
QUEUE_PROGRESS = "progress"

# One Redis, or kombu's sentinel:// list with master_name below (proj/redisconf.py).
broker_url = settings.REDIS.celery_broker_url()
broker_connection_retry_on_startup = True
# A work task keeps running while the broker connection is lost (Redis restarting): its
# job row, heartbeat and attempt are in the database; only its late ack may be lost, and a
# redelivered copy does nothing (attempt fencing). Set explicitly: Celery warns otherwise.
worker_cancel_long_running_tasks_on_connection_loss = False
# Redis redelivers a message nobody acknowledged within this many seconds. A countdown
# longer than that would be run again and again (Celery docs, "Using Redis", Caveats:
# visibility timeout), hence the check below.
broker_transport_options = {
    "visibility_timeout": settings.CELERY_VISIBILITY_TIMEOUT_S,
    **settings.REDIS.celery_transport_options(),
}

result_backend = "django-db"
result_extended = True
task_track_started = True

task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
timezone = "UTC"
enable_utc = True

worker_send_task_events = True
task_send_sent_event = True

task_default_queue = QUEUE_JOBS
# Work tasks of job kinds (``tasks_app.kind.<name>``) are sent to the queue their kind names
# (``job_kind(queue=...)``, default ``jobs``) by ``services.job_run``.
# ``run_job`` is short (mark running, dispatch the work, schedule poll 0): it runs on the
# progress queue so a job starts at once even while every ``jobs`` slot holds long work.
task_routes = {
    "tasks_app.run_job": {"queue": QUEUE_PROGRESS},
    "tasks_app.poll_job": {"queue": QUEUE_PROGRESS},
    "tasks_app.poll_tick": {"queue": QUEUE_PROGRESS},
    "tasks_app.supervise": {"queue": QUEUE_PROGRESS},
    "tasks_app.housekeep": {"queue": QUEUE_PROGRESS},
    "celery.backend_cleanup": {"queue": QUEUE_PROGRESS},
}

# The supervisor (DESIGN.md "Supervision and recovery"): ``celery beat`` sends it to the
# progress queue. Its messages expire after one interval: passes queued while no progress
# worker ran are dropped instead of running in a burst when one comes back. The schedule is
# held in memory (``celery.beat:Scheduler``, not the shelve file of ``PersistentScheduler``):
# a pass a restart forgets costs nothing, since every pass decides from the database.
beat_scheduler = "celery.beat:Scheduler"
beat_schedule = {
    "supervise": {
        "task": "tasks_app.supervise",
        "schedule": settings.SUPERVISOR_INTERVAL_S,
        # ignore_result in the message: beat's send_task would say False (services.schedule_poll).
        "options": {"expires": settings.SUPERVISOR_INTERVAL_S, "ignore_result": True},
    },
    "housekeep": {
        "task": "tasks_app.housekeep",
        "schedule": settings.HOUSEKEEPING_INTERVAL_S,
        "options": {"expires": settings.HOUSEKEEPING_INTERVAL_S},
    },
}
#: Celery results (django-celery-results rows) older than this are deleted by housekeeping.
result_expires = settings.RESULT_EXPIRES_S

# A task is acknowledged after it ran, so a worker that dies mid-task hands it to another;
# every task of the project is idempotent (polls carry their sequence number).
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1

if settings.PROGRESS_POLL_INTERVAL_MS / 1000 * 10 > settings.CELERY_VISIBILITY_TIMEOUT_S:
    raise ImproperlyConfigured(
        "PROGRESS_POLL_INTERVAL_MS must stay far below the broker visibility timeout "
        f"({settings.CELERY_VISIBILITY_TIMEOUT_S} s): at most a tenth of it"
    )
