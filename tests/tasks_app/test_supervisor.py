"""The supervisor's repairs, attempt fencing and heartbeats, decided from the database.

Real broker (the test database of a real Redis), in-memory channel layer, SQLite with real
commits (frames and tasks leave after commit). Time is moved by ageing the rows' stamps.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from tasks_app import attempts, polling, services, supervisor
from tasks_app.heartbeat import Heartbeat
from tasks_app.kinds import get_kind
from tasks_app.models import Job, JobState, Upload
from tasks_app.progress import ProgressRecorder, WorkSuperseded, read_recorded_progress
from tests.factories import run_job, start_job, start_simulated
from tests.tasks_app.test_services import _upload, assert_next_poll_armed, frames, listen

pytestmark = pytest.mark.django_db(transaction=True)


def aged(job: Job, **stamps_s: float) -> Job:
    """Move the named time stamps of the job ``seconds`` into the past."""
    job.refresh_from_db()
    now = timezone.now()
    Job.objects.filter(pk=job.pk).update(**{name: now - dt.timedelta(seconds=s) for name, s in stamps_s.items()})
    job.refresh_from_db()
    return job


def work_tasks(broker: Any) -> list[Any]:
    return [t for t in broker.queued("jobs") if t.name == "tasks_app.kind.primes"]


def test_a_pending_job_whose_run_job_was_lost_is_started_again(user, broker, memory_layer):
    job = start_simulated(user)
    broker.flush()  # Redis came back empty
    assert supervisor.supervise() == {}  # not overdue yet
    aged(job, chain_at=10)
    assert supervisor.supervise() == {supervisor.RESTARTED: 1}
    assert [(t.name, t.args) for t in broker.queued("progress")] == [("tasks_app.run_job", [str(job.id)])]
    assert supervisor.supervise() == {}  # once per grace period, not every pass
    run_job(job)
    assert Job.objects.get(pk=job.pk).state == JobState.RUNNING


def test_a_stopped_chain_is_rearmed_once_and_the_original_poll_does_nothing(user, broker, memory_layer):
    job = run_job(start_simulated(user, step=10, interval_ms=1000))
    listen(memory_layer, job)
    assert supervisor.supervise() == {}  # poll 0 is not overdue
    aged(job, chain_at=10, started_at=3.5)
    broker.flush()  # the worker holding poll 0 died
    assert supervisor.supervise() == {supervisor.REARMED: 1}
    job.refresh_from_db()
    assert job.poll_seq == 0
    assert job.poll_due_at is not None
    assert job.poll_due_at <= timezone.now()
    assert_next_poll_armed(job, broker)
    assert supervisor.supervise() == {}
    polling.job_poll_tick(tick=timezone.now())  # the re-armed poll
    polling.job_poll(job_id=job.id, poll_seq=0)  # the original, redelivered after the visibility timeout
    job.refresh_from_db()
    assert job.poll_seq == 1  # claimed once: no fork
    assert_next_poll_armed(job, broker)
    assert [f["job"]["progress"]["current"] for f in frames(memory_layer)] == [30]


def test_lost_work_runs_again_then_fails_after_max_attempts(user, broker, memory_layer):
    job = start_job(user, "primes", {"limit": 1000})
    assert [t.args for t in work_tasks(broker)] == [[str(job.id), 1]]
    assert attempts.work_claim(job_id=job.id, attempt=1) is not None
    listen(memory_layer, job)
    assert supervisor.supervise() == {}
    aged(job, heartbeat_at=11, chain_at=0.1)  # the worker died 11 s ago; polls go on
    assert supervisor.supervise() == {supervisor.RERUN: 1}
    job.refresh_from_db()
    assert (job.state, job.attempt, job.heartbeat_at) == (JobState.RUNNING, 2, None)
    assert job.kind_state["retrying"] == {
        "attempt": 2,
        "max_attempts": 2,
        "next_attempt_in_s": 0,
        "reason": "worker lost",
    }
    assert [t.args for t in work_tasks(broker)] == [[str(job.id), 1], [str(job.id), 2]]
    (frame,) = frames(memory_layer)
    assert frame["job"]["retrying"]["reason"] == "worker lost"
    assert frame["job"]["progress"]["message"] == "worker lost; attempt 2 of 2 starting"
    # The first attempt's copy, redelivered, does nothing, and its outcome does not count.
    assert attempts.work_claim(job_id=job.id, attempt=1) is None
    assert attempts.job_succeed(job_id=job.id, result={"late": True}, attempt=1) is False
    assert attempts.work_heartbeat(job.id, 1) is False
    # Attempt 2 starts: viewers see the notice go.
    assert attempts.work_claim(job_id=job.id, attempt=2) is not None
    assert attempts.work_claim(job_id=job.id, attempt=2) is None  # a duplicate copy
    (frame,) = frames(memory_layer)
    assert frame["job"]["retrying"] is None
    assert frame["job"]["progress"]["message"] == "attempt 2 started"
    aged(job, heartbeat_at=11, chain_at=0.1)
    assert supervisor.supervise() == {supervisor.FAILED: 1}
    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert job.error == "worker lost: no heartbeat for 11 s (attempt 2 of 2)"
    assert [f["frame"] for f in frames(memory_layer)] == ["job.failed"]


def test_work_that_never_started_is_sent_again_with_backoff(user, broker, memory_layer):
    job = start_job(user, "primes", {"limit": 1000})
    broker.flush()  # the queued work task was lost
    aged(job, work_dispatched_at=11, chain_at=0.1)
    assert supervisor.supervise() == {supervisor.RESENT_WORK: 1}
    assert [t.args for t in work_tasks(broker)] == [[str(job.id), 1]]
    job.refresh_from_db()
    assert job.work_sends == 2
    aged(job, work_dispatched_at=11, chain_at=0.1)
    assert supervisor.supervise() == {}  # the second re-send waits twice as long
    aged(job, work_dispatched_at=21, chain_at=0.1)
    assert supervisor.supervise() == {supervisor.RESENT_WORK: 1}
    job.refresh_from_db()
    assert (job.attempt, job.state) == (1, JobState.RUNNING)  # still the first attempt: it never ran


def test_lost_work_past_its_time_limit_fails_instead_of_running_again(user, broker, memory_layer):
    job = start_job(user, "primes", {"limit": 1000})
    attempts.work_claim(job_id=job.id, attempt=1)
    limit = get_kind("primes").time_limit_s
    aged(job, heartbeat_at=11, work_started_at=limit + 1, chain_at=0.1)
    assert supervisor.supervise() == {supervisor.FAILED: 1}
    job.refresh_from_db()
    assert (job.state, job.error) == (JobState.FAILED, f"time limit exceeded ({limit} s)")


def test_a_poll_driven_job_past_its_time_limit_fails(user, broker, memory_layer):
    job = run_job(start_simulated(user, step=1, interval_ms=10_000))
    limit = get_kind("simulated").time_limit_s
    aged(job, started_at=limit + 1)
    polling.job_poll(job_id=job.id, poll_seq=0)
    job.refresh_from_db()
    assert (job.state, job.error) == (JobState.FAILED, f"time limit exceeded ({limit} s)")


def test_a_cancel_nobody_confirmed_ends_cancelled(user, broker, memory_layer):
    job = run_job(start_simulated(user))
    services.job_cancel(owner=user, job_id=job.id)
    aged(job, cancel_requested_at=4, chain_at=0.1)
    assert supervisor.supervise() == {}
    aged(job, cancel_requested_at=6, chain_at=0.1)
    assert supervisor.supervise() == {supervisor.CANCELLED: 1}
    assert Job.objects.get(pk=job.pk).state == JobState.CANCELLED


def test_a_cancelled_work_task_is_confirmed_only_once_it_cannot_write(user, broker, memory_layer):
    job = start_job(user, "primes", {"limit": 1000})
    kind = get_kind("primes")
    attempts.work_claim(job_id=job.id, attempt=1)
    services.job_cancel(owner=user, job_id=job.id)
    job.refresh_from_db()
    assert kind.cancel_confirmed(job, None) is False  # beating, and it had less than 1 s to stop
    job = aged(job, cancel_requested_at=1.5)
    assert kind.cancel_confirmed(job, None) is True  # terminated now
    job = aged(job, heartbeat_at=11, cancel_requested_at=0)
    assert kind.cancel_confirmed(job, None) is True  # its worker is gone


def record_until_stopped(recorder: ProgressRecorder) -> None:
    for n in range(10_000_000):
        recorder.set_progress(n, None)


def test_heartbeat_turns_superseded_and_the_recorder_stops_the_work(user, broker):
    job = start_job(user, "primes", {"limit": 1000})
    beats: list[int] = []

    def beat(job_id: str, attempt: int) -> bool:
        beats.append(attempt)
        return len(beats) < 2

    with Heartbeat(str(job.id), 1, beat, interval_s=0.01) as heartbeat:
        recorder = ProgressRecorder(job.id, attempt=1, min_interval_ms=0, superseded=lambda: heartbeat.superseded)
        with pytest.raises(WorkSuperseded):
            record_until_stopped(recorder)
    assert beats == [1, 1]
    assert read_recorded_progress(job.id, 2) is None  # nothing recorded for any other attempt


def test_housekeeping_removes_orphan_uploads_and_recorded_progress_of_finished_jobs(user, broker, memory_layer):
    kept = _upload(user, "kept.csv", b"a\n1\n")
    orphan = _upload(user, "orphan.csv", b"a\n1\n")
    young = _upload(user, "young.csv", b"a\n1\n")
    services.job_start(owner=user, kind="csv_profile", params={"upload_id": str(kept.id)})
    old = timezone.now() - dt.timedelta(days=2)
    Upload.objects.filter(pk__in=[kept.pk, orphan.pk]).update(created_at=old)
    finished = run_job(start_simulated(user))
    ProgressRecorder(finished.id).set_progress(1, 2)
    attempts.job_fail(job_id=finished.id, error="done")
    ProgressRecorder(finished.id).set_progress(1, 2)  # a write that came after the final state
    running = start_job(user, "primes", {"limit": 1000})
    ProgressRecorder(running.id).set_progress(1, 2)
    done = supervisor.housekeep()
    assert (done["uploads"], done["recorded"]) == (1, 1)
    assert set(Upload.objects.values_list("name", flat=True)) == {"kept.csv", "young.csv"}
    assert not orphan.file.storage.exists(orphan.file.name)
    assert young.file.storage.exists(young.file.name)
    assert read_recorded_progress(finished.id, 1) is None
    assert read_recorded_progress(running.id, 1) is not None
