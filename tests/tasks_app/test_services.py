"""Services: the state machine, the poll chain's idempotency and the ordering of frames.

Real broker (the test database of a real Redis), in-memory channel layer, SQLite. The
tests commit for real (``transaction=True``): frames and tasks leave only after commit.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext

from realtime import messaging
from tasks_app import attempts, polling, services
from tasks_app.errors import IdempotencyConflict, InvalidParams, JobNotFound, NotCancellable, RateLimited, UnknownKind
from tasks_app.kinds import get_kind
from tasks_app.kinds.task_kind import WorkFailed
from tasks_app.models import Job, JobState
from tasks_app.progress import ProgressRecorder, read_recorded_progress
from tests.factories import run_job, start_simulated

pytestmark = pytest.mark.django_db(transaction=True)

LISTENER = "test.listener"


def listen(layer: Any, job: Job) -> None:
    async_to_sync(layer.group_add)(messaging.job_group(job.id), LISTENER)


def frames(layer: Any) -> list[dict[str, Any]]:
    queue = layer.channels.get(LISTENER)
    out = []
    while queue is not None and not queue.empty():
        out.append(queue.get_nowait()[1])
    return out


def age(job: Job, ms: int) -> None:
    """Move the job's start ``ms`` milliseconds into the past (its clock-driven progress)."""
    assert job.started_at is not None
    Job.objects.filter(pk=job.pk).update(started_at=job.started_at - dt.timedelta(milliseconds=ms))
    job.refresh_from_db()


def polls(broker: Any) -> list[Any]:
    """The ``poll_job`` tasks queued (kinds that observe)."""
    return [t for t in broker.queued("progress") if t.name == "tasks_app.poll_job"]


def queued_ticks(broker: Any) -> list[int]:
    """The ticks whose ``poll_tick`` task is queued, milliseconds since the epoch."""
    return [t.args[0] for t in broker.queued("progress") if t.name == "tasks_app.poll_tick"]


def assert_next_poll_armed(job: Job, broker: Any) -> None:
    """The job's next poll is due, and a queued tick serves it (at or after its due time)."""
    job.refresh_from_db()
    assert job.poll_due_at is not None, "no next poll scheduled"
    due_ms = job.poll_due_at.timestamp() * 1000
    assert any(due_ms <= tick <= due_ms + 1000 for tick in queued_ticks(broker)), (due_ms, queued_ticks(broker))


def test_start_creates_pending_job_and_dispatches_run_job_on_commit(user, broker, memory_layer):
    job = start_simulated(user, step=5)
    assert job.state == JobState.PENDING
    assert job.seq == 1
    assert job.params == {"step": 5, "interval_ms": 200}
    queued = broker.queued("progress")
    assert [(t.name, t.args) for t in queued] == [("tasks_app.run_job", [str(job.id)])]


def test_start_rejects_unknown_kind_and_bad_params_and_starts_nothing(user, broker, memory_layer):
    with pytest.raises(
        UnknownKind, match="known kinds: csv_profile, csv_profile_parallel, primes, primes_split, remote"
    ):
        services.job_start(owner=user, kind="nope", params={})
    with pytest.raises(InvalidParams) as info:
        services.job_start(owner=user, kind="simulated", params={"step": 0, "interval_ms": "x", "zzz": 1})
    assert set(info.value.fields) == {"step", "interval_ms", "zzz"}
    assert Job.objects.count() == 0
    assert broker.queued("progress") == []


def test_idempotency_key_returns_the_same_job(user, memory_layer, broker):
    first = services.job_start(owner=user, kind="simulated", params={}, idempotency_key="k1")
    again = services.job_start(owner=user, kind="simulated", params={}, idempotency_key="k1")
    assert again.id == first.id
    with pytest.raises(IdempotencyConflict) as info:
        services.job_start(owner=user, kind="simulated", params={"step": 9}, idempotency_key="k1")
    assert info.value.code == "idempotency_conflict"
    assert Job.objects.count() == 1


def test_active_job_limit_and_a_cancel_releases_its_slot_at_once(user, settings, memory_layer, broker):
    settings.JOBS_MAX_ACTIVE_PER_USER = 2
    first = run_job(start_simulated(user, interval_ms=10_000))
    start_simulated(user)
    with pytest.raises(RateLimited, match="limit 2"):
        start_simulated(user)
    assert services.job_cancel(owner=user, job_id=first.id).state == JobState.CANCELLING
    assert start_simulated(user).state == JobState.PENDING  # before any poll confirmed the cancel


def test_run_marks_running_publishes_and_schedules_poll_zero(user, broker, memory_layer):
    job = start_simulated(user)
    listen(memory_layer, job)
    job = run_job(job)
    assert job.state == JobState.RUNNING
    assert job.seq == 2
    assert job.started_at is not None
    sent = frames(memory_layer)
    assert [(f["frame"], f["job"]["state"], f["job"]["seq"]) for f in sent] == [("job.progress", "running", 2)]
    assert job.poll_seq == 0
    assert_next_poll_armed(job, broker)
    [tick] = [t for t in broker.queued("progress") if t.name == "tasks_app.poll_tick"]
    assert tick.countdown, "a tick is a countdown task"
    assert tick.ignore_result, "a tick stores no result"
    assert polls(broker) == [], "a kind that does not observe gets no poll_job of its own"
    # A redelivered run_job finds the job running and does nothing.
    run_job(job)
    assert frames(memory_layer) == []
    assert len(queued_ticks(broker)) == 1


def test_a_poll_of_a_kind_without_observe_reads_the_row_once_and_writes_it_once(user, broker, memory_layer):
    job = run_job(start_simulated(user, step=10, interval_ms=10_000))
    polling.job_poll(job_id=job.id, poll_seq=0)
    with CaptureQueriesContext(connection) as queries:
        polling.job_poll(job_id=job.id, poll_seq=1)  # nothing changed: only the claim is written
    statements = [q["sql"].split()[0] for q in queries.captured_queries if "tasks_app_job" in q["sql"]]
    assert statements == ["SELECT", "UPDATE"], queries.captured_queries
    job.refresh_from_db()
    assert job.poll_seq == 2
    assert not get_kind("simulated").observes
    assert get_kind("remote").observes


def test_poll_sends_only_changes_and_ignores_stale_and_duplicate_polls(user, broker, memory_layer):
    job = run_job(start_simulated(user, step=10, interval_ms=1000))
    listen(memory_layer, job)
    polling.job_poll(job_id=job.id, poll_seq=0)  # elapsed < 1 step: progress 0 → message changes
    first = frames(memory_layer)
    assert len(first) == 1
    assert first[0]["job"]["progress"]["current"] == 0
    polling.job_poll(job_id=job.id, poll_seq=1)  # nothing changed: nothing sent
    assert frames(memory_layer) == []
    age(job, 3500)
    polling.job_poll(job_id=job.id, poll_seq=0)  # stale: already claimed
    polling.job_poll(job_id=job.id, poll_seq=1)  # duplicate of a poll that ran
    assert frames(memory_layer) == []
    polling.job_poll(job_id=job.id, poll_seq=2)
    sent = frames(memory_layer)
    assert [f["job"]["progress"]["current"] for f in sent] == [30]
    assert sent[0]["job"]["progress"]["percent"] == 30.0
    job.refresh_from_db()
    assert job.poll_seq == 3
    assert_next_poll_armed(job, broker)


def test_poll_ends_job_succeeded_and_chain_stops(user, broker, memory_layer):
    job = run_job(start_simulated(user, step=50, interval_ms=100))
    listen(memory_layer, job)
    age(job, 250)
    polling.job_poll(job_id=job.id, poll_seq=0)
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert job.result == {"steps": 2, "step": 50, "simulated_ms": 200}
    assert job.progress_current == 100
    assert job.finished_at is not None
    sent = frames(memory_layer)
    assert [(f["frame"], f["job"]["seq"]) for f in sent] == [("job.succeeded", 3)]
    assert job.poll_due_at is None  # no poll 1: no tick serves the job any more
    polling.job_poll(job_id=job.id, poll_seq=1)
    assert frames(memory_layer) == []


def test_fail_at_ends_job_failed_with_message(user, broker, memory_layer):
    job = run_job(start_simulated(user, step=10, interval_ms=100, fail_at=30))
    age(job, 450)
    polling.job_poll(job_id=job.id, poll_seq=0)
    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert job.error == "simulated failure at 30% (fail_at=30)"
    assert job.progress_current == 30


def test_cancel_pending_job_is_final_at_once(user, memory_layer, broker):
    job = start_simulated(user)
    listen(memory_layer, job)
    cancelled = services.job_cancel(owner=user, job_id=job.id)
    assert cancelled.state == JobState.CANCELLED
    assert [f["frame"] for f in frames(memory_layer)] == ["job.cancelled"]
    run_job(job)  # run_job arriving later does nothing
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED
    assert job.poll_due_at is None
    assert queued_ticks(broker) == []


def test_cancel_running_job_goes_through_cancelling_then_poll_ends_it(user, broker, memory_layer):
    job = run_job(start_simulated(user))
    listen(memory_layer, job)
    asked = services.job_cancel(owner=user, job_id=job.id)
    assert asked.state == JobState.CANCELLING
    polling.job_poll(job_id=job.id, poll_seq=0)
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED
    sent = frames(memory_layer)
    assert [(f["frame"], f["job"]["state"]) for f in sent] == [
        ("job.progress", "cancelling"),
        ("job.cancelled", "cancelled"),
    ]
    assert [f["job"]["seq"] for f in sent] == sorted(f["job"]["seq"] for f in sent)
    with pytest.raises(NotCancellable):
        services.job_cancel(owner=user, job_id=job.id)


def test_cancel_of_another_users_job_is_not_found(user, other_user, memory_layer, broker):
    job = start_simulated(user)
    with pytest.raises(JobNotFound):
        services.job_cancel(owner=other_user, job_id=job.id)
    with pytest.raises(JobNotFound):
        services.job_cancel(owner=user, job_id="not-a-uuid")
    job.refresh_from_db()
    assert job.state == JobState.PENDING


def test_work_outcome_after_cancel_request_ends_cancelled(user, memory_layer, broker):
    job = run_job(start_simulated(user))
    services.job_cancel(owner=user, job_id=job.id)
    assert attempts.job_succeed(job_id=job.id, result={"x": 1}) is True
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED
    assert job.result is None
    assert attempts.job_fail(job_id=job.id, error="late") is False


def _upload(user: Any, name: str, content: bytes) -> Any:
    return services.upload_create(owner=user, file=SimpleUploadedFile(name, content))


def test_csv_profile_work_task_profiles_and_succeeds(user, broker, memory_layer):
    from tasks_app.kinds.csv_profile import profile_uploaded_csv as profile_csv_task

    upload = _upload(user, "tiny.csv", b"a,b\n1,x\n2,\n3,y\n")
    job = services.job_start(owner=user, kind="csv_profile", params={"upload_id": str(upload.id)})
    job = run_job(job)
    assert [t.name for t in broker.queued("jobs")] == ["tasks_app.kind.csv_profile"]
    listen(memory_layer, job)
    returned = profile_csv_task(str(job.id))
    assert (returned["rows"], returned["bad_rows"], len(returned["columns"])) == (3, 0, 2)
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert job.result is not None
    assert job.result["file"] == "tiny.csv"
    assert [c["nulls"] for c in job.result["columns"]] == [0, 1]
    assert job.progress_current == job.progress_total == upload.size
    assert [f["frame"] for f in frames(memory_layer)] == ["job.succeeded"]


def test_csv_profile_of_a_binary_file_fails_with_a_clear_error(user, broker, memory_layer):
    from tasks_app.kinds.csv_profile import profile_uploaded_csv as profile_csv_task

    upload = _upload(user, "image.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 10)
    job = run_job(services.job_start(owner=user, kind="csv_profile", params={"upload_id": str(upload.id)}))
    with pytest.raises(WorkFailed, match=r"^image\.csv is not a CSV file"):  # the task ends FAILURE
        profile_csv_task(str(job.id))
    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert job.error.startswith("image.csv is not a CSV file we can read: binary content")
    assert "Traceback" not in job.error


def test_csv_profile_cancelled_before_its_work_started_ends_cancelled_without_running(user, broker, memory_layer):
    from tasks_app.kinds.csv_profile import profile_uploaded_csv as profile_csv_task

    upload = _upload(user, "big.csv", b"n,s\n" + b"".join(b"%d,row %d\n" % (i, i) for i in range(40000)))
    job = run_job(services.job_start(owner=user, kind="csv_profile", params={"upload_id": str(upload.id)}))
    listen(memory_layer, job)
    services.job_cancel(owner=user, job_id=job.id)
    assert profile_csv_task(str(job.id), 1) is None  # the claim finds the job cancelling
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED
    assert job.work_started_at is None  # the work never ran
    assert read_recorded_progress(job.id, 1) is None
    assert [f["frame"] for f in frames(memory_layer)] == ["job.progress", "job.cancelled"]


def test_csv_profile_params_must_name_an_own_upload(user, other_user, memory_layer):
    upload = _upload(other_user, "theirs.csv", b"a\n1\n")
    with pytest.raises(InvalidParams) as info:
        services.job_start(owner=user, kind="csv_profile", params={"upload_id": str(upload.id)})
    assert info.value.fields == {"upload_id": ["no upload with this id; upload the file first"]}
    with pytest.raises(InvalidParams) as info:
        services.job_start(owner=user, kind="csv_profile", params={})
    assert info.value.fields == {"upload_id": ["this parameter is required"]}


def test_recorder_bounds_writes_however_often_it_is_called(user, memory_layer):
    now = [0.0]
    recorder = ProgressRecorder("00000000-0000-0000-0000-000000000001", min_interval_ms=100, clock=lambda: now[0])
    for i in range(100_000):
        now[0] = i * 0.0001  # 100,000 calls over 10 simulated seconds
        recorder.set_progress(i, 100_000)
    assert 99 <= recorder.writes <= 101  # the first, then one per 100 ms of the 10 s
    before = recorder.writes
    recorder.set_progress(100_000, 100_000)
    assert recorder.writes == before + 1  # reaching the total always writes
    recorded = read_recorded_progress("00000000-0000-0000-0000-000000000001", 1)
    assert recorded is not None
    assert recorded.current == 100_000
