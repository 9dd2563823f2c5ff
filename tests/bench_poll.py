"""One poll in process (``make bench`` runs it): CPU and wall time of ``polling.job_poll``.

``python -m tests.bench_poll REDIS_URL [--no-wal]`` migrates a fresh SQLite file, runs one
simulated job and calls ``job_poll`` ``POLLS`` times in a row (each claims its ``poll_seq``,
reads the job and sends the next poll to the broker after commit; the progress does not move,
so nothing is published), and prints one line of figures. ``--no-wal`` drops the settings'
``PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL`` to compare with SQLite's defaults.

``--tick N`` measures the ticks instead (``polling.job_poll_tick``): N simulated jobs due at
once, ``TICK_ROUNDS`` ticks in a row, every job's progress one step further each round, so
every poll saves and publishes a frame to the real channel layer (Redis): CPU and wall
milliseconds per job polled.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

POLLS = 1500
#: Ticks in a row of ``--tick N``.
TICK_ROUNDS = 20
#: Polls of ``--quick`` (the CI form of the benchmark).
QUICK_POLLS = 100


def setup(redis_url: str, wal: bool) -> None:
    """Django on a fresh SQLite file (WAL unless ``wal`` is False) and the given Redis."""
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
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def single(polls: int) -> None:
    """``polls`` calls of ``job_poll`` on one job whose progress does not move."""
    from django.contrib.auth.models import User
    from django.db import connection

    from tasks_app import polling, services
    from tasks_app.models import Job

    owner = User.objects.create(username="bench-poll")
    job = services.job_start(owner=owner, kind="simulated", params={"step": 1, "interval_ms": 10_000})
    services.job_run(job_id=job.id)
    with connection.cursor() as cursor:
        journal = cursor.execute("PRAGMA journal_mode").fetchone()[0]
    first = Job.objects.get(pk=job.id).poll_seq
    wall, cpu = time.perf_counter(), time.process_time()
    for n in range(polls):
        polling.job_poll(job_id=job.id, poll_seq=first + n)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert Job.objects.get(pk=job.id).poll_seq == first + polls, "every poll claimed its poll_seq"
    print(
        f"  journal_mode={journal}: {1000 * cpu / polls:.2f} ms CPU, {1000 * wall / polls:.2f} ms wall per poll"
        f" ({polls} polls)"
    )


def tick(n: int, rounds: int = TICK_ROUNDS) -> None:
    """``rounds`` ticks over ``n`` due simulated jobs, each poll saving and publishing a step."""
    import datetime as dt

    from django.conf import settings
    from django.contrib.auth.models import User
    from django.db.models import F
    from django.utils import timezone

    from tasks_app import polling, services
    from tasks_app.models import Job

    settings.JOBS_MAX_ACTIVE_PER_USER = n
    owner = User.objects.create(username="bench-tick")
    ids = []
    for _ in range(n):
        job = services.job_start(owner=owner, kind="simulated", params={"step": 1, "interval_ms": 1000})
        services.job_run(job_id=job.id)
        ids.append(job.id)
    jobs = Job.objects.filter(pk__in=ids)
    polled = 0
    wall = cpu = 0.0
    for _ in range(rounds):
        now = timezone.now()
        jobs.update(poll_due_at=now, started_at=F("started_at") - dt.timedelta(seconds=1))
        w, c = time.perf_counter(), time.process_time()
        polled += len(polling.job_poll_tick(tick=now))
        wall, cpu = wall + time.perf_counter() - w, cpu + time.process_time() - c
    seqs = set(jobs.values_list("seq", flat=True))
    assert polled == n * rounds, polled
    assert seqs == {2 + rounds}, seqs  # every poll saved a step
    print(
        f"  tick of {n} due jobs (batches of {settings.PROGRESS_TICK_BATCH}), a frame each: "
        f"{1000 * cpu / polled:.2f} ms CPU, {1000 * wall / polled:.2f} ms wall per job polled ({polled} polls)"
    )


if __name__ == "__main__":
    flags = sys.argv[2:]
    setup(sys.argv[1], wal="--no-wal" not in flags)
    if "--tick" in flags:
        tick(int(flags[flags.index("--tick") + 1]), rounds=2 if "--quick" in flags else TICK_ROUNDS)
    else:
        single(QUICK_POLLS if "--quick" in flags else POLLS)
