"""One poll in process (``make bench`` runs it): CPU and wall time of ``services.job_poll``.

``python -m tests.bench_poll REDIS_URL [--no-wal]`` migrates a fresh SQLite file, runs one
simulated job and calls ``job_poll`` ``POLLS`` times in a row (each claims its ``poll_seq``,
reads the job and sends the next poll to the broker after commit; the progress does not move,
so nothing is published), and prints one line of figures. ``--no-wal`` drops the settings'
``PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL`` to compare with SQLite's defaults.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

POLLS = 1500
#: Polls of ``--quick`` (the CI form of the benchmark).
QUICK_POLLS = 100


def main(redis_url: str, wal: bool, polls: int = POLLS) -> None:
    workdir = tempfile.mkdtemp(prefix="bench-poll-")
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "proj.settings",
            "DJANGO_DEBUG": "1",
            "DJANGO_ENV_FILE": "",
            "DATABASE_URL": f"sqlite:///{workdir}/db.sqlite3",
            "REDIS_URL": redis_url,
        }
    )
    import django
    from django.conf import settings

    django.setup()
    if not wal:
        settings.DATABASES["default"]["OPTIONS"].pop("init_command", None)
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection

    from tasks_app import services
    from tasks_app.models import Job

    call_command("migrate", verbosity=0)
    owner = User.objects.create(username="bench-poll")
    job = services.job_start(owner=owner, kind="simulated", params={"step": 1, "interval_ms": 10_000})
    services.job_run(job_id=job.id)
    with connection.cursor() as cursor:
        journal = cursor.execute("PRAGMA journal_mode").fetchone()[0]
    first = Job.objects.get(pk=job.id).poll_seq
    wall, cpu = time.perf_counter(), time.process_time()
    for n in range(polls):
        services.job_poll(job_id=job.id, poll_seq=first + n)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert Job.objects.get(pk=job.id).poll_seq == first + polls, "every poll claimed its poll_seq"
    print(
        f"  journal_mode={journal}: {1000 * cpu / polls:.2f} ms CPU, {1000 * wall / polls:.2f} ms wall per poll"
        f" ({polls} polls)"
    )


if __name__ == "__main__":
    main(sys.argv[1], wal="--no-wal" not in sys.argv[2:], polls=QUICK_POLLS if "--quick" in sys.argv[2:] else POLLS)
