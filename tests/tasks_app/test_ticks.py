"""Poll ticks: one task polls every due job, in batches, fenced like single polls.

Real broker (the test database of a real Redis), in-memory channel layer, SQLite with real
commits. Time is moved by writing the rows' ``poll_due_at``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tasks_app import polling, services, ticks
from tasks_app.models import Job, JobState
from tasks_app.progress import ProgressRecorder
from tests.factories import make_job, run_job, start_simulated
from tests.tasks_app.test_services import assert_next_poll_armed, frames, listen, polls, queued_ticks

pytestmark = pytest.mark.django_db(transaction=True)

T0 = dt.datetime(2026, 12, 1, 12, 0, 0, tzinfo=dt.UTC)
T0_MS = int(T0.timestamp() * 1000)


def due_by(jobs: list[Job], at: dt.datetime) -> None:
    Job.objects.filter(pk__in=[j.pk for j in jobs]).update(poll_due_at=at)


def test_a_poll_is_served_by_the_first_tick_at_or_after_it_and_ahead_of_the_clock(settings: Any) -> None:
    settings.PROGRESS_TICK_MS = 25
    assert ticks.tick_ms(T0, now_ms=T0_MS - 1000) == T0_MS  # on the grid: that tick
    assert ticks.tick_ms(T0 + dt.timedelta(milliseconds=1), now_ms=T0_MS - 1000) == T0_MS + 25
    # Due now or in the past: the first tick ARM_MARGIN_MS ahead of the clock, never one gone by.
    assert ticks.tick_ms(T0, now_ms=T0_MS) == T0_MS + 25
    assert ticks.tick_ms(T0, now_ms=T0_MS + 10_000 - 5) == T0_MS + 10_000
    assert ticks.tick_time(T0_MS + 25) == T0 + dt.timedelta(milliseconds=25)


def test_a_process_sends_one_task_per_tick(broker: Any) -> None:
    due = timezone.now() + dt.timedelta(seconds=5)
    for _ in range(3):
        ticks.arm(due)
    ticks.arm(due + dt.timedelta(seconds=1))
    assert queued_ticks(broker) == [ticks.tick_ms(due), ticks.tick_ms(due + dt.timedelta(seconds=1))]


def test_a_tick_polls_every_due_job_and_no_other_then_arms_their_next_ticks(user, broker, memory_layer) -> None:
    jobs = [run_job(start_simulated(user, step=10, interval_ms=1000)) for _ in range(3)]
    for job in jobs:
        listen(memory_layer, job)
    now = timezone.now()
    due_by(jobs[:2], now - dt.timedelta(milliseconds=1))
    due_by(jobs[2:], now + dt.timedelta(seconds=10))
    broker.flush()
    ticks.forget_armed()
    polled = polling.job_poll_tick(tick=now)
    assert sorted(polled) == sorted(str(j.id) for j in jobs[:2])
    assert [Job.objects.get(pk=j.pk).poll_seq for j in jobs] == [1, 1, 0]
    assert len(frames(memory_layer)) == 2  # the "started" message became progress 0 of 100
    for job in jobs[:2]:  # saved with executemany: JSON and datetime fields read back as saved
        job.refresh_from_db()
        assert job.progress_message == "step 0 of 10"
        assert isinstance(job.progress_samples, list)
        assert job.kind_state == {}
        assert job.poll_due_at is not None
        assert job.poll_due_at > now
    for job in jobs[:2]:
        assert_next_poll_armed(job, broker)
    assert polling.job_poll_tick(tick=now) == [], "a duplicate tick polls nothing"


def test_a_tick_takes_its_jobs_in_batches_of_one_read_each(user, broker, memory_layer, settings) -> None:
    settings.PROGRESS_TICK_BATCH = 2
    settings.JOBS_MAX_ACTIVE_PER_USER = 10
    jobs = [run_job(start_simulated(user, step=10, interval_ms=1000)) for _ in range(5)]
    now = timezone.now()
    due_by(jobs, now)
    with CaptureQueriesContext(connection) as queries:
        polled = polling.job_poll_tick(tick=now)
    assert sorted(polled) == sorted(str(j.id) for j in jobs)
    reads = [
        q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT") and "tasks_app_job" in q["sql"]
    ]
    assert len(reads) == 1 + 3, reads  # the due list, then one locked read per batch of 2


def test_a_tick_fences_each_job_by_its_poll_seq(user, broker, memory_layer) -> None:
    job = run_job(start_simulated(user, step=10, interval_ms=1000))
    now = timezone.now()
    due_by([job], now)
    polling.job_poll(job_id=job.id, poll_seq=0)  # a poll_job (redelivered, hand-sent) got there first
    job.refresh_from_db()
    assert job.poll_seq == 1
    assert job.poll_due_at is not None
    assert job.poll_due_at > now
    assert polling.job_poll_tick(tick=now) == []
    assert Job.objects.get(pk=job.pk).poll_seq == 1


def test_a_tick_reads_the_recorded_progress_of_every_task_job_at_once(user, broker, memory_layer, settings) -> None:
    settings.JOBS_MAX_ACTIVE_PER_USER = 10
    jobs = [run_job(services.job_start(owner=user, kind="primes", params={"limit": 1000})) for _ in range(3)]
    ProgressRecorder(jobs[0].id, attempt=1).set_progress(40, 1000, "forty")
    ProgressRecorder(jobs[1].id, attempt=1).set_progress(70, 1000, "seventy")
    now = timezone.now()
    due_by(jobs, now)
    assert len(polling.job_poll_tick(tick=now)) == 3
    got = [(j.progress_current, j.progress_message) for j in Job.objects.filter(pk__in=[j.pk for j in jobs])]
    assert sorted(got) == sorted([(40, "forty"), (70, "seventy"), (0, "started")])


def test_a_kind_that_observes_gets_a_poll_job_of_its_own_not_a_tick(user, broker) -> None:
    job = make_job(user, kind="remote", params={"service": "x"}, state=JobState.RUNNING, poll_seq=4)
    with transaction.atomic():
        services.schedule_poll(job, 500)
        job.save(update_fields=["poll_due_at"])
    job.refresh_from_db()
    assert job.poll_due_at is None, "no tick selects it"
    assert [(t.name, t.args, t.countdown) for t in polls(broker)] == [("tasks_app.poll_job", [str(job.id), 4], True)]
    assert queued_ticks(broker) == []
