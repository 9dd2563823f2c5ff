"""Split job kinds (``split_job_kind``, ``tasks_app.items``): the split, the items, the merge,
retries and the failure policies, fencing of old runs, cancel and the supervisor's repairs.

The tasks run in this process (``Task.apply``, as a worker would run them), on the real broker
and cache (the test database of a real Redis), with the in-memory channel layer. The real
stack with real workers is in ``tests/integration/test_split.py``.

(Over ~350 lines: one case per outcome of a split job (split, items, merge, retries, policies,
fencing, cancel, repairs); they share this module's helpers.)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import current_app
from django.core.files.uploadedfile import SimpleUploadedFile
from pydantic import Field

from tasks_app import items, polling, services, supervisor
from tasks_app.kinds import REGISTRY, JobFailed, ProgressRecorder, SplitKind, StrictParams, csv_profile, split_job_kind
from tasks_app.models import ItemState, Job, JobItem, JobState
from tasks_app.progress import read_recorded_parts
from tests.factories import start_job
from tests.kinds import declared_apart, kinds_registered
from tests.realdata import AIRPORTS, PENGUINS_RAW, SEATTLE_WEATHER, STOCKS

PRIMES_BELOW_2000 = 303  # pi(2000), a known figure


def task(name: str) -> Any:
    return current_app.tasks[name]


def split(job: Job) -> Job:
    """Run the job's split task; returns the job as it then is."""
    outcome = task(f"tasks_app.kind.{job.kind}").apply(args=[str(job.id), job.attempt], task_id=job.work_task_id)
    assert outcome.successful(), outcome.traceback
    job.refresh_from_db()
    return job


def run_item(job: Job, index: int, run: int | None = None) -> Any:
    item = JobItem.objects.get(job=job, index=index)
    run = item.attempt if run is None else run
    return task(f"tasks_app.kind.{job.kind}.item").apply(
        args=[str(job.id), job.attempt, index, run], task_id=item.task_id
    )


def run_merge(job: Job) -> Any:
    job.refresh_from_db()
    merge = job.kind_state["merge"]
    return task(f"tasks_app.kind.{job.kind}.merge").apply(args=[str(job.id), job.attempt], task_id=merge["task_id"])


def queued_names(broker: Any) -> list[str]:
    return [t.name for t in broker.queued("jobs")]


def test_the_example_split_kind_is_registered_with_its_three_tasks() -> None:
    kind = REGISTRY["primes_split"]
    assert isinstance(kind, SplitKind)
    assert (kind.work_task, kind.item_task, kind.merge_task) == (
        "tasks_app.kind.primes_split",
        "tasks_app.kind.primes_split.item",
        "tasks_app.kind.primes_split.merge",
    )
    assert kind.item_failure_policy(Job(kind="primes_split", params={"limit": 10})) == "finish"
    assert kind.item_failure_policy(Job(kind="primes_split", params={"limit": 10, "keep_going": False})) == "fail"
    for name in (kind.work_task, kind.item_task, kind.merge_task):
        assert name in current_app.tasks


def merge_nothing(params: Any, results: list[Any]) -> None:
    return None


def test_bad_arguments_of_the_decorator_are_refused() -> None:
    class Params(StrictParams):
        n: int = 1

    with pytest.raises(ValueError, match="on_item_failure"):
        split_job_kind("test-bad-policy", params=Params, split=list, merge=merge_nothing, on_item_failure="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 1"):
        split_job_kind("test-bad-attempts", params=Params, split=list, merge=merge_nothing, item_attempts=0)


@pytest.mark.django_db(transaction=True)
def test_a_split_job_runs_split_items_merge_with_one_bar(user: Any, broker: Any, memory_layer: Any) -> None:
    job = start_job(user, "primes_split", {"limit": 2000, "parts": 4})
    assert queued_names(broker)[-1] == "tasks_app.kind.primes_split"
    broker.flush()
    job = split(job)
    assert job.kind_state["items"] == 4
    assert job.progress_total == 1998  # the ranges' sizes: 2 .. 1999
    rows = list(job.items.order_by("index"))
    assert [row.item for row in rows] == [[2, 502], [502, 1002], [1002, 1502], [1502, 2000]]
    assert [row.state for row in rows] == [ItemState.QUEUED] * 4
    sent = broker.queued("jobs")
    assert [t.name for t in sent] == ["tasks_app.kind.primes_split.item"] * 4
    assert sorted(t.args[2] for t in sent) == [0, 1, 2, 3]
    assert all(t.args[:2] == [str(job.id), 1] for t in sent)

    assert run_item(job, 0).successful()
    assert run_item(job, 1).successful()
    job.refresh_from_db()
    reading = REGISTRY["primes_split"].read(job, dt.datetime.now(dt.UTC))
    assert reading.progress is not None
    assert reading.progress.current == 1000
    assert reading.progress.message == "2 of 4 parts done, 0 running"
    assert "merge" not in job.kind_state
    assert run_item(job, 2).successful()
    assert run_item(job, 3).successful()
    assert len(read_recorded_parts(job.id, 1, ["0.1", "1.1", "2.1", "3.1"])) == 4, "each item recorded"
    job.refresh_from_db()
    assert "merge" in job.kind_state
    assert queued_names(broker)[-1] == "tasks_app.kind.primes_split.merge"
    assert run_merge(job).successful()
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert job.result == {"limit": 2000, "primes": PRIMES_BELOW_2000}
    assert job.progress_current == job.progress_total == 1998
    assert job.progress_message == "4 of 4 parts done"
    assert read_recorded_parts(job.id, 1, ["0.1", "1.1", "2.1", "3.1"]) == {}, "the items' progress is forgotten"
    # The merge runs once: a second copy claims nothing.
    assert run_merge(job).result is None
    job.refresh_from_db()
    assert job.result == {"limit": 2000, "primes": PRIMES_BELOW_2000}


class LenientSplitParams(StrictParams):
    parts: int = Field(4, ge=1)
    crash_item: int = 1
    crashes: int = Field(0, ge=0, description="Runs of crash_item that raise before one succeeds.")


@split_job_kind(
    "test-split-lenient",
    params=LenientSplitParams,
    split=lambda params: list(range(params.parts)),
    merge=lambda params, results: {"sum": sum(results)},
    on_item_failure="finish",
)
def lenient_item(params: LenientSplitParams, item: int, recorder: ProgressRecorder) -> int:
    run = int(recorder.part.split(".")[1])  # "<index>.<item attempt>"
    if item == params.crash_item and run <= params.crashes:
        raise ZeroDivisionError(f"run {run} of item {item} crashes")
    return item * 10


@pytest.mark.django_db(transaction=True)
def test_an_item_that_raises_runs_again_and_its_second_run_counts(user: Any, broker: Any, memory_layer: Any) -> None:
    job = split(start_job(user, "test-split-lenient", {"crashes": 1}))
    for index in (0, 2, 3):
        assert run_item(job, index).successful()
    outcome = run_item(job, 1)
    assert outcome.failed()
    assert "ZeroDivisionError in test-split-lenient" in str(outcome.result)  # no message of the user's code
    item = JobItem.objects.get(job=job, index=1)
    assert (item.state, item.attempt) == (ItemState.QUEUED, 2)
    assert [(t.args[2], t.args[3]) for t in broker.queued("jobs") if t.name.endswith(".item")][-1] == (1, 2)
    assert run_item(job, 1).successful()
    assert run_merge(job).successful()
    job.refresh_from_db()
    assert (job.state, job.result) == (JobState.SUCCEEDED, {"sum": 60})


@pytest.mark.django_db(transaction=True)
def test_an_item_that_keeps_failing_is_counted_and_sampled_under_finish(
    user: Any, broker: Any, memory_layer: Any
) -> None:
    job = split(start_job(user, "test-split-lenient", {"crashes": 99}))
    for index in (0, 2, 3):
        assert run_item(job, index).successful()
    for run in (1, 2, 3):
        assert run_item(job, 1).failed()
        assert JobItem.objects.get(job=job, index=1).attempt == min(run + 1, 3)
    item = JobItem.objects.get(job=job, index=1)
    assert (item.state, item.attempt) == (ItemState.FAILED, 3)
    assert "ZeroDivisionError" in item.error
    assert run_merge(job).successful()
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert isinstance(job.result, dict)
    assert job.result["sum"] == 50
    failed = job.result["failed_items"]
    assert failed["count"] == 1
    assert (failed["samples"][0]["index"], failed["samples"][0]["item"]) == (1, 1)
    assert job.progress_message == "3 of 4 parts done, 1 failed"


@pytest.mark.django_db(transaction=True)
def test_a_part_that_cannot_be_done_is_not_retried(user: Any, broker: Any, memory_layer: Any) -> None:
    job = split(start_job(user, "primes_split", {"limit": 2000, "parts": 4, "fail_part": 1}))
    assert run_item(job, 1).failed()  # JobFailed: failed for good at once
    item = JobItem.objects.get(job=job, index=1)
    assert (item.state, item.attempt, item.error) == (ItemState.FAILED, 1, "part 1 fails on purpose (fail_part)")
    for index in (0, 2, 3):
        assert run_item(job, index).successful()
    assert run_merge(job).successful()
    job.refresh_from_db()
    assert job.result is not None
    assert job.result["primes"] < PRIMES_BELOW_2000
    assert job.result["failed_items"]["samples"][0]["item"] == [502, 1002]


class StrictSplitParams(StrictParams):
    parts: int = Field(3, ge=1)
    fail: int | None = None


@split_job_kind(
    "test-split-strict",
    params=StrictSplitParams,
    split=lambda params: list(range(params.parts)),
    merge=lambda params, results: {"sum": sum(results)},
    item_attempts=2,
)
def strict_item(params: StrictSplitParams, item: int, recorder: ProgressRecorder) -> int:
    if item == params.fail:
        raise JobFailed(f"item {item} cannot be done")
    recorder.set_progress(1, 1)
    return item * 10


#: The two kinds above, for this module's tests only (tests/kinds.py).
TEST_KINDS = declared_apart("test-split-lenient", "test-split-strict")


@pytest.fixture(autouse=True)
def _test_kinds() -> Iterator[None]:
    with kinds_registered(*TEST_KINDS):
        yield


@pytest.mark.django_db(transaction=True)
def test_one_failed_item_fails_the_job_at_once_under_fail(user: Any, broker: Any, memory_layer: Any) -> None:
    job = split(start_job(user, "test-split-strict", {"parts": 3, "fail": 1}))
    assert run_item(job, 0).successful()
    outcome = run_item(job, 1)  # JobFailed: no retry
    assert outcome.failed()
    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert job.error == "part 2 of 3 failed: item 1 cannot be done"
    assert JobItem.objects.get(job=job, index=2).state == ItemState.CANCELLED
    assert run_item(job, 2).result is None  # its task, if it still comes, does nothing
    assert "merge" not in job.kind_state


@pytest.mark.django_db(transaction=True)
def test_an_old_run_of_an_item_writes_nothing(user: Any, broker: Any, memory_layer: Any) -> None:
    job = split(start_job(user, "test-split-strict", {"parts": 2}))
    item = JobItem.objects.get(job=job, index=0)
    JobItem.objects.filter(pk=item.pk).update(attempt=2)  # the supervisor ran it again meanwhile
    assert run_item(job, 0, run=1).result is None
    item.refresh_from_db()
    assert (item.state, item.result) == (ItemState.QUEUED, None)
    assert run_item(job, 0, run=2).successful()
    item.refresh_from_db()
    assert (item.state, item.result) == (ItemState.SUCCEEDED, 0)


@pytest.mark.django_db(transaction=True)
def test_cancel_cancels_every_item_and_their_tasks_do_nothing(user: Any, broker: Any, memory_layer: Any) -> None:
    job = split(start_job(user, "test-split-strict", {"parts": 3}))
    assert run_item(job, 0).successful()
    services.job_cancel(owner=user, job_id=job.id)
    job.refresh_from_db()
    assert job.state == JobState.CANCELLING
    assert run_item(job, 1).result is None  # a queued item of a job being cancelled never runs
    polling.job_poll(job_id=job.id, poll_seq=job.poll_seq)  # no item runs: confirmed at once
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED
    states = list(job.items.order_by("index").values_list("state", flat=True))
    assert states == [ItemState.SUCCEEDED, ItemState.CANCELLED, ItemState.CANCELLED]


@pytest.mark.django_db(transaction=True)
def test_the_supervisor_resends_an_item_that_never_started_and_reruns_a_lost_one(
    user: Any, broker: Any, memory_layer: Any, settings: Any
) -> None:
    job = split(start_job(user, "test-split-strict", {"parts": 2}))
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=settings.JOB_HEARTBEAT_TIMEOUT_S + 1)
    # Item 0 was claimed by a worker that then died; item 1's message was lost.
    first = JobItem.objects.get(job=job, index=0)
    JobItem.objects.filter(pk=first.pk).update(state=ItemState.RUNNING, heartbeat_at=dt.datetime.now(dt.UTC))
    broker.flush()
    done = supervisor.supervise(now=later)
    assert done[items.RERUN_ITEM] + done[items.RESENT_ITEM] == 1  # one repair counted per job and pass
    rows = {row.index: row for row in job.items.all()}
    assert (rows[0].state, rows[0].attempt) == (ItemState.QUEUED, 2)
    assert "worker lost" in rows[0].error
    assert rows[1].sends == 2
    sent = sorted((t.args[2], t.args[3]) for t in broker.queued("jobs"))
    assert sent == [(0, 2), (1, 1)]
    assert run_item(job, 0).successful()
    assert run_item(job, 1).successful()
    assert run_merge(job).successful()
    job.refresh_from_db()
    assert (job.state, job.result) == (JobState.SUCCEEDED, {"sum": 10})


def profile_both_ways(user: Any, name: str, content: bytes, parts: int) -> tuple[Job, Job]:
    """The same upload profiled by ``csv_profile`` (one task) and ``csv_profile_parallel``
    (``parts`` byte ranges), every task run in this process."""
    upload = services.upload_create(owner=user, file=SimpleUploadedFile(name, content))
    single = start_job(user, "csv_profile", {"upload_id": str(upload.id)})
    outcome = task("tasks_app.kind.csv_profile").apply(args=[str(single.id), 1], task_id=single.work_task_id)
    assert outcome.successful(), outcome.traceback
    parallel = split(start_job(user, "csv_profile_parallel", {"upload_id": str(upload.id), "parts": parts}))
    for index in range(parallel.kind_state["items"]):
        assert run_item(parallel, index).successful()
    assert run_merge(parallel).successful()
    single.refresh_from_db()
    parallel.refresh_from_db()
    return single, parallel


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", [AIRPORTS, SEATTLE_WEATHER, PENGUINS_RAW, STOCKS], ids=lambda p: p.name)
def test_the_parallel_csv_profile_is_the_single_task_profile_exactly(
    path: Path, user: Any, broker: Any, memory_layer: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(csv_profile, "MIN_PART_BYTES", 1000)  # several parts of these small files
    single, parallel = profile_both_ways(user, path.name, path.read_bytes(), parts=5)
    assert parallel.kind_state["items"] == 5
    assert (single.state, parallel.state) == (JobState.SUCCEEDED, JobState.SUCCEEDED)
    assert parallel.result == single.result
    assert parallel.progress_current == parallel.progress_total
    assert parallel.progress_message == "5 of 5 parts done"


@pytest.mark.django_db(transaction=True)
def test_a_file_whose_quotes_break_rfc_4180_is_profiled_whole_and_stays_exact(
    user: Any, broker: Any, memory_layer: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(csv_profile, "MIN_PART_BYTES", 10)
    rows = "".join(f"{n},5'{n % 12}\",x{n}\n" for n in range(200))  # a stray quote in an unquoted field
    single, parallel = profile_both_ways(user, "heights.csv", ("id,height,name\n" + rows).encode(), parts=4)
    assert parallel.state == JobState.SUCCEEDED
    assert parallel.result == single.result


@pytest.mark.django_db(transaction=True)
def test_a_file_that_is_not_csv_fails_the_parallel_job_at_the_split(user: Any, broker: Any, memory_layer: Any) -> None:
    upload = services.upload_create(owner=user, file=SimpleUploadedFile("photo.csv", b"\x89PNG\r\n\x1a\n" + bytes(200)))
    job = start_job(user, "csv_profile_parallel", {"upload_id": str(upload.id)})
    outcome = task("tasks_app.kind.csv_profile_parallel").apply(args=[str(job.id), 1], task_id=job.work_task_id)
    assert outcome.failed()
    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert job.error.startswith("photo.csv is not a CSV file we can read")
    assert not job.items.exists()


@pytest.mark.django_db(transaction=True)
def test_the_admin_shows_a_split_jobs_items_and_links_all_its_tasks(
    admin_client: Any, user: Any, broker: Any, memory_layer: Any
) -> None:
    job = split(start_job(user, "primes_split", {"limit": 2000, "parts": 3}))
    for index in range(3):
        assert run_item(job, index).successful()
    assert run_merge(job).successful()
    job.refresh_from_db()
    page = admin_client.get(f"/admin/tasks_app/job/{job.id}/change/").content.decode()
    assert page.count("[2, 668]") == 1, "item 0 is listed once"
    ids = [job.celery_task_id, job.work_task_id, *job.items.values_list("task_id", flat=True)]
    ids.append(job.kind_state["merge"]["task_id"])
    assert f"?task_id__in={','.join(ids)}" in page
