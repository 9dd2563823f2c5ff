"""The public Python API: the ``job_kind`` decorator, the recorder's bounded writes and
cooperative cancellation, and the README's "Add your own job kind" example, which is the
shipped module ``tasks_app/jobkinds.py`` word for word.

Real broker and cache (the test database of a real Redis), in-memory channel layer.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from pydantic import Field

from tasks_app import services
from tasks_app.errors import InvalidParams
from tasks_app.jobkinds import count_primes
from tasks_app.kinds import REGISTRY, JobFailed, ProgressRecorder, StrictParams, TaskKind, job_kind
from tasks_app.models import JobState
from tasks_app.progress import read_recorded_progress
from tests.factories import make_job, start_job
from tests.kinds import declared_apart, kinds_registered, registry_restored

ROOT = Path(__file__).resolve().parents[2]


def redis_sets() -> int:
    """SET commands the test Redis server has run so far (its INFO commandstats)."""
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    try:
        return int(client.info("commandstats").get("cmdstat_set", {}).get("calls", 0))
    finally:
        client.close()


def test_readme_example_is_the_shipped_module() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Add your own job kind", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, "the README section has a python example"
    assert blocks[0] == (ROOT / "tasks_app" / "jobkinds.py").read_text()


def test_the_example_kind_is_registered_with_its_schema_and_queue() -> None:
    kind = REGISTRY["primes"]
    assert isinstance(kind, TaskKind)
    assert (kind.work_task, kind.queue) == ("tasks_app.kind.primes", "jobs")
    assert count_primes.name == "tasks_app.kind.primes"


@pytest.mark.django_db(transaction=True)
def test_bad_params_of_a_decorated_kind_are_field_errors(user: Any) -> None:
    with pytest.raises(InvalidParams) as info:
        services.job_start(owner=user, kind="primes", params={"limit": 1, "colour": "red"})
    assert info.value.fields == {
        "limit": ["Input should be greater than or equal to 2"],
        "colour": ["unknown parameter"],
    }


@pytest.mark.django_db(transaction=True)
def test_100000_set_progress_calls_in_a_real_task_make_few_writes(user: Any, broker: Any, memory_layer: Any) -> None:
    job = start_job(user, "primes", {"limit": 100_000})
    assert [t.name for t in broker.queued("jobs")][-1] == "tasks_app.kind.primes"
    sets_before = redis_sets()
    t0 = time.monotonic()
    outcome = count_primes.apply(args=[str(job.id)], task_id=job.work_task_id)
    run_s = time.monotonic() - t0
    writes = redis_sets() - sets_before
    assert outcome.successful()
    assert outcome.result == {"limit": 100_000, "primes": 9592}  # pi(10^5), a known figure
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert job.progress_current == job.progress_total == 100_000
    # 99,998 set_progress calls; at most one write per 100 ms, plus the first and the last.
    assert 2 <= writes <= run_s / 0.1 + 2, (writes, run_s)
    assert writes < 1000
    print(f"\n99,998 set_progress calls in {run_s:.2f} s: {writes} cache writes")


@pytest.mark.django_db(transaction=True)
def test_cancel_mid_loop_ends_the_task_cleanly(user: Any, broker: Any, memory_layer: Any) -> None:
    job = start_job(user, "primes", {"limit": 20_000_000})  # minutes of work
    cancel = threading.Timer(0.5, lambda: services.job_cancel(owner=user, job_id=job.id))
    cancel.start()
    outcome = count_primes.apply(args=[str(job.id)], task_id=job.work_task_id)
    cancel.join()
    assert outcome.successful()  # JobCancelled ended the loop; the task did not fail
    assert outcome.result is None
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED  # the work stopped, so the job ends at once
    assert job.work_started_at is not None
    assert read_recorded_progress(job.id, 1) is None  # cleared on the final state


class EchoParams(StrictParams):
    word: str = Field(max_length=20)


@job_kind("test-echo", params=EchoParams, queue="jobs", min_interval_ms=50)
def echo(params: EchoParams, recorder: ProgressRecorder) -> dict[str, str]:
    if params.word == "fail":
        raise JobFailed("asked to fail")
    if params.word == "crash":
        raise ZeroDivisionError("boom")
    recorder.set_progress(1, 2, "half")
    recorder.increment_progress(message="done")
    return {"echo": params.word}


#: Declared above for the tests below only (tests/kinds.py).
ECHO = declared_apart("test-echo")


@pytest.fixture
def echo_kind() -> Iterator[None]:
    with kinds_registered(*ECHO):
        yield


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("word", "state", "result", "error"),
    [
        ("hello", JobState.SUCCEEDED, {"echo": "hello"}, ""),
        ("fail", JobState.FAILED, None, "asked to fail"),
        ("crash", JobState.FAILED, None, "internal error in test-echo; the worker log has the details (task "),
    ],
)
def test_outcomes_of_a_decorated_kind(
    user: Any, broker: Any, memory_layer: Any, echo_kind: None, word, state, result, error
) -> None:
    job = start_job(user, "test-echo", {"word": word})
    outcome = echo.apply(args=[str(job.id)], task_id=job.work_task_id)
    job.refresh_from_db()
    assert job.state == state
    assert job.result == result
    assert job.error.startswith(error)
    assert "Traceback" not in job.error
    if state == JobState.FAILED:
        # The task is a FAILURE too (Flower, the admin's task results), with the job's error
        # and a traceback that holds none of the work function's frames.
        assert outcome.state == "FAILURE"
        assert str(outcome.result) == job.error
        assert "def echo" not in outcome.traceback
        assert "ZeroDivisionError" not in outcome.traceback
    if state == JobState.SUCCEEDED:
        assert (job.progress_current, job.progress_total, job.progress_message) == (2, 2, "done")


def test_title_summary_and_total_of_a_decorated_kind(user: Any, caplog: pytest.LogCaptureFixture) -> None:
    from tasks_app.selectors import job_snapshot

    class SizedParams(StrictParams):
        n: int = Field(10, ge=0)

    def broken(params: SizedParams) -> str:
        raise KeyError("oops")

    with registry_restored():
        job_kind(
            "test-titled",
            params=SizedParams,
            title="Titled work",
            summary=lambda p: f"n = {p.n:,}",
            total=lambda p: p.n,
        )(lambda p, r: None)
        job_kind("test-untitled_work", params=SizedParams, summary=broken)(lambda p, r: None)
        titled = services.job_start(owner=user, kind="test-titled", params={"n": 12345})
        assert titled.progress_total == 12345  # known before the work reports
        snapshot = job_snapshot(titled)
        assert (snapshot["title"], snapshot["summary"]) == ("Titled work", "n = 12,345")
        assert snapshot["progress"]["total"] == 12345
        untitled = services.job_start(owner=user, kind="test-untitled_work", params={})
        assert untitled.progress_total is None
        # A summary function that raises is logged; the job is shown without a summary.
        assert (job_snapshot(untitled)["title"], job_snapshot(untitled)["summary"]) == ("Test untitled work", "")
        assert "test-untitled_work: its summary function failed" in caplog.text
    assert "test-titled" not in REGISTRY


def test_a_job_of_a_kind_no_longer_installed_keeps_a_title(user: Any) -> None:
    from tasks_app.selectors import job_snapshot

    job = make_job(user, kind="retired_kind", params={"x": 1})
    snapshot = job_snapshot(job)
    assert (snapshot["title"], snapshot["summary"]) == ("Retired kind", "")


def test_a_kind_name_is_registered_once() -> None:
    with pytest.raises(ValueError, match="already registered"):
        job_kind("primes", params=EchoParams)(lambda p, r: None)
    with pytest.raises(ValueError, match="must match"):
        job_kind("Bad Name", params=EchoParams)(lambda p, r: None)
