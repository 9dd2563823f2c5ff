"""The jobs' series (tasks_app/metrics.py): the jobs in each state read from the database, the
poll lag observed by ticks, the supervisor's repairs, and a pool process's live gauges
forgotten when it exits. Values are read from this process's registry, as a scrape reads them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from celery.signals import worker_process_shutdown
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client import REGISTRY, Gauge, values

from tasks_app import metrics, polling, supervisor
from tasks_app.kinds import REGISTRY as KINDS
from tasks_app.models import Job, JobState
from tests.factories import make_job, run_job, start_simulated
from tests.tasks_app.test_supervisor import aged

pytestmark = pytest.mark.django_db(transaction=True)


def sample(name: str, **labels: str) -> float:
    """This process's value of sample ``name`` (0 for a series not made yet)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def lag_buckets() -> dict[str, float]:
    return {str(le): sample("jobs_poll_lag_seconds_bucket", le=str(le)) for le in metrics.POLL_LAG_BUCKETS_S}


def test_jobs_in_state_is_one_group_by_query_over_every_state_and_kind(user):
    for state, kind in [
        (JobState.RUNNING, "simulated"),
        (JobState.RUNNING, "simulated"),
        (JobState.CANCELLING, "simulated"),
        (JobState.SUCCEEDED, "primes"),
        (JobState.FAILED, "a_kind_no_longer_installed"),
    ]:
        make_job(user, kind=kind, state=state)
    with CaptureQueriesContext(connection) as queries:
        (family,) = list(metrics.JobsInStateCollector().collect())
    assert len(queries) == 1
    assert "GROUP BY" in queries[0]["sql"]
    assert "created_at" not in queries[0]["sql"]  # Job's Meta ordering stays out of the grouping
    assert (family.name, family.type) == ("jobs_in_state", "gauge")
    got = {(s.labels["state"], s.labels["kind"]): s.value for s in family.samples}
    assert {key: n for key, n in got.items() if n} == {
        ("running", "simulated"): 2,
        ("cancelling", "simulated"): 1,
        ("succeeded", "primes"): 1,
        ("failed", "a_kind_no_longer_installed"): 1,
    }
    # Every state of every installed kind is a series, at 0 when no job is in it.
    assert set(got) == {(state, kind) for state in JobState.values for kind in KINDS} | {
        ("failed", "a_kind_no_longer_installed")
    }


def test_a_tick_observes_each_polled_jobs_lag_behind_its_due_time(user, broker, memory_layer):
    late, on_time = run_job(start_simulated(user, step=10)), run_job(start_simulated(user, step=10))
    now = timezone.now()
    Job.objects.filter(pk=late.pk).update(poll_due_at=now - dt.timedelta(seconds=0.3))
    Job.objects.filter(pk=on_time.pk).update(poll_due_at=now - dt.timedelta(seconds=0.001))
    count, total_s, buckets = sample("jobs_poll_lag_seconds_count"), sample("jobs_poll_lag_seconds_sum"), lag_buckets()

    assert sorted(polling.job_poll_tick(tick=now)) == sorted([str(late.id), str(on_time.id)])

    assert sample("jobs_poll_lag_seconds_count") - count == 2
    added_s = sample("jobs_poll_lag_seconds_sum") - total_s
    assert 0.301 <= added_s < 0.301 + 2 * 0.25  # the two lags, measured when the tick read the rows
    grew = {le: n - buckets[le] for le, n in lag_buckets().items()}
    assert grew["0.25"] == 1  # the job 1 ms late (under 250 ms however slow this machine is)
    assert grew["0.5"] == grew["30.0"] == 2  # and the one 300 ms late
    # A duplicate tick polls nothing and observes nothing.
    assert polling.job_poll_tick(tick=now) == []
    assert sample("jobs_poll_lag_seconds_count") - count == 2


def test_each_supervisor_repair_is_counted_under_its_name(user, broker, memory_layer):
    repairs = "jobs_supervisor_repairs_total"
    before = {name: REGISTRY.get_sample_value(repairs, {"repair": name}) for name in supervisor.REPAIRS}
    assert None not in before.values()  # every series exists from the start
    pending = start_simulated(user)
    chain = run_job(start_simulated(user, step=10, interval_ms=1000))
    broker.flush()  # Redis came back empty: run_job and the poll are lost
    aged(pending, chain_at=10)
    aged(chain, chain_at=10, started_at=3.5)
    assert supervisor.supervise() == {supervisor.RESTARTED: 1, supervisor.REARMED: 1}
    assert supervisor.supervise() == {}  # nothing more to repair: nothing more counted
    grew = {name: sample(repairs, repair=name) - (n or 0) for name, n in before.items()}
    assert grew == {name: 1 if name in (supervisor.RESTARTED, supervisor.REARMED) else 0 for name in before}


def test_a_pool_process_that_exits_forgets_its_live_gauges(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(metrics.MULTIPROC_DIR_VARIABLE, str(tmp_path))
    child, other = 4_000_001, 4_000_002  # above Linux's pid_max: pids of no process
    for pid in (child, other):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(values, "ValueClass", values.MultiProcessValue(process_identifier=lambda pid=pid: pid))
            Gauge("jobs_test_live", "help", multiprocess_mode="livesum", registry=None).inc()
    values.close_all_multiprocess_files()

    def files() -> list[str]:
        return sorted(path.name for path in tmp_path.iterdir())

    assert files() == [f"gauge_livesum_{child}.db", f"gauge_livesum_{other}.db"]
    # What billiard's pool process sends as it exits (celery/concurrency/prefork.py process_destructor).
    worker_process_shutdown.send(sender=None, pid=child, exitcode=0)
    assert files() == [f"gauge_livesum_{other}.db"]
    monkeypatch.delenv(metrics.MULTIPROC_DIR_VARIABLE)
    worker_process_shutdown.send(sender=None, pid=other, exitcode=0)  # single-process mode: nothing to do
    assert files() == [f"gauge_livesum_{other}.db"]
