"""``GET /metrics`` (proj/metrics.py): who may scrape, what one scrape holds in a single process,
and the multiprocess folder added up as prometheus_client writes it from other processes."""

from __future__ import annotations

import base64
import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, values

from proj.metrics import PROXY_HEADERS, forget_dead_processes
from tasks_app import metrics as tasks_metrics
from tasks_app.models import JobState
from tests.factories import make_job, make_user
from tests.scrape import parse, total, value

pytestmark = pytest.mark.django_db

REMOTE = "203.0.113.7"  # TEST-NET-3: never this host
STAFF = ("ops", "ops-password-1")


@pytest.fixture
def staff(db: None) -> Any:
    return make_user(STAFF[0], STAFF[1], is_staff=True)


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def scrape(client: Client, **extra: Any) -> Any:
    return client.get("/metrics", **extra)


def test_a_loopback_scrape_shows_every_series_and_the_jobs_of_the_database(client, user):
    for state, kind in [("running", "simulated"), ("running", "simulated"), ("succeeded", "primes")]:
        make_job(user, kind=kind, state=state)
    response = scrape(client)  # the test client's REMOTE_ADDR is 127.0.0.1
    assert response.status_code == 200
    assert response["Content-Type"] == CONTENT_TYPE_LATEST
    samples = parse(response.content.decode())
    assert value(samples, "jobs_in_state", state="running", kind="simulated") == 2
    assert value(samples, "jobs_in_state", state="succeeded", kind="primes") == 1
    assert value(samples, "jobs_in_state", state="pending", kind="csv_profile") == 0
    # This process's own series, as its default registry holds them (no multiprocess folder).
    for name, labels in [
        ("jobs_ws_frames_sent_total", {"endpoint": "jobs"}),
        ("jobs_ws_open_sockets", {"endpoint": "prog"}),
        ("jobs_layer_events_dropped_total", {}),
        ("jobs_layer_redis_reconnects_total", {}),
        ("jobs_events_publish_failed_total", {}),
        ("jobs_poll_lag_seconds_count", {}),
        ("jobs_supervisor_repairs_total", {"repair": "rearmed"}),
        ("jobs_supervisor_repairs_total", {"repair": "resent_item"}),
    ]:
        assert value(samples, name, **labels) == REGISTRY.get_sample_value(name, labels), name
    assert value(samples, "process_cpu_seconds_total") is not None  # the default registry's own


def test_ipv6_loopback_may_scrape_too(client):
    assert scrape(client, REMOTE_ADDR="::1").status_code == 200


@pytest.mark.parametrize("header", PROXY_HEADERS)
def test_anyone_else_gets_401_with_a_basic_challenge(client, header):
    for extra in ({"REMOTE_ADDR": REMOTE}, {header: REMOTE}):  # another host; through a proxy of this one
        response = scrape(client, **extra)
        assert response.status_code == 401, extra
        assert response["WWW-Authenticate"] == 'Basic realm="metrics", charset="UTF-8"'
        assert b"basic auth as a staff user" in response.content
        assert b"jobs_" not in response.content


def test_a_staff_user_may_scrape_from_anywhere_with_basic_auth(client, staff):
    response = scrape(client, REMOTE_ADDR=REMOTE, HTTP_X_FORWARDED_FOR=REMOTE, HTTP_AUTHORIZATION=basic(*STAFF))
    assert response.status_code == 200
    assert value(parse(response.content.decode()), "jobs_in_state", state="running", kind="simulated") == 0


@pytest.mark.parametrize(
    "authorization",
    [
        basic(STAFF[0], "wrong-password"),
        basic("alice", "alice-password-1"),  # a user who is not staff
        "Basic !!not-base64!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),  # not UTF-8
        "Bearer " + base64.b64encode(b"ops:ops-password-1").decode(),
        "",
    ],
)
def test_basic_auth_other_than_an_active_staff_users_is_refused(client, staff, user, authorization):
    assert scrape(client, REMOTE_ADDR=REMOTE, HTTP_AUTHORIZATION=authorization).status_code == 401


def test_an_inactive_staff_user_is_refused(client, staff):
    staff.is_active = False
    staff.save()
    assert scrape(client, REMOTE_ADDR=REMOTE, HTTP_AUTHORIZATION=basic(*STAFF)).status_code == 401


def test_metrics_enabled_off_is_404_and_only_get_and_head_are_served(client, settings):
    assert client.post("/metrics").status_code == 405
    assert client.head("/metrics").status_code == 200
    settings.METRICS_ENABLED = False
    assert scrape(client).status_code == 404


# Multiprocess mode: values written to the folder by prometheus_client, as other processes write them.


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv(tasks_metrics.MULTIPROC_DIR_VARIABLE, str(tmp_path))
    yield tmp_path
    values.close_all_multiprocess_files()


def dead_pid() -> int:
    """The pid of a process that ran and was reaped."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@contextlib.contextmanager
def as_process(pid: int) -> Iterator[dict[str, Any]]:
    """The project's series as process ``pid`` writes them in multiprocess mode: prometheus_client's
    own metric classes with its file-backed values (values.py ``MultiProcessValue``) under that pid;
    values are made when a metric (or a child of its labels) is, so use them inside the block."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(values, "ValueClass", values.MultiProcessValue(process_identifier=lambda: pid))
        yield {
            "frames": Counter("jobs_ws_frames_sent", "help", ["endpoint"], registry=None),
            "sockets": Gauge("jobs_ws_open_sockets", "help", ["endpoint"], multiprocess_mode="livesum", registry=None),
            "lag": Histogram("jobs_poll_lag_seconds", "help", buckets=tasks_metrics.POLL_LAG_BUCKETS_S, registry=None),
        }


def test_a_scrape_adds_up_every_process_of_the_folder_and_forgets_dead_ones_live_gauges(client, user, folder):
    gone, worker = dead_pid(), os.getppid()  # the worker: any process alive meanwhile
    with as_process(gone) as crashed_web:
        crashed_web["frames"].labels("jobs").inc(5)
        crashed_web["sockets"].labels("jobs").inc(3)  # SIGKILLed with 3 sockets open: never decremented
    with as_process(os.getpid()) as web:
        web["frames"].labels("jobs").inc(2)
        web["sockets"].labels("jobs").inc(1)
    with as_process(worker) as progress_worker:
        for lag_s in (0.003, 0.02, 0.7):
            progress_worker["lag"].observe(lag_s)
    make_job(user, state=JobState.FAILED)
    assert {path.name for path in folder.glob("gauge_livesum_*.db")} == {
        f"gauge_livesum_{gone}.db",
        f"gauge_livesum_{os.getpid()}.db",
    }

    samples = parse(scrape(client).content.decode())

    assert value(samples, "jobs_ws_frames_sent_total", endpoint="jobs") == 7  # a dead process's count stays
    assert value(samples, "jobs_ws_open_sockets", endpoint="jobs") == 1  # only the live process's sockets
    assert not (folder / f"gauge_livesum_{gone}.db").exists()
    assert value(samples, "jobs_poll_lag_seconds_count") == 3
    assert value(samples, "jobs_poll_lag_seconds_sum") == pytest.approx(0.723)
    assert value(samples, "jobs_poll_lag_seconds_bucket", le="0.005") == 1
    assert value(samples, "jobs_poll_lag_seconds_bucket", le="0.025") == 2
    assert value(samples, "jobs_poll_lag_seconds_bucket", le="0.5") == 2
    assert value(samples, "jobs_poll_lag_seconds_bucket", le="1.0") == 3
    assert value(samples, "jobs_in_state", state="failed", kind="simulated") == 1
    # Only the folder's series and the database's: not this process's default registry.
    assert value(samples, "process_cpu_seconds_total") is None
    assert total(samples, "jobs_events_publish_failed_total") == 0


def test_forget_dead_processes_deletes_only_live_gauges_of_processes_that_are_gone(folder):
    gone = dead_pid()
    with as_process(gone) as made:
        made["sockets"].labels("prog").inc()
        made["frames"].labels("prog").inc()
    with as_process(os.getpid()) as mine:
        mine["sockets"].labels("prog").inc()
    values.close_all_multiprocess_files()
    assert forget_dead_processes(folder) == [gone]
    # Counters and histograms of the dead process stay counted; the live process's gauge stays.
    assert {path.name for path in folder.iterdir()} == {
        f"counter_{gone}.db",
        f"histogram_{gone}.db",
        f"gauge_livesum_{os.getpid()}.db",
        f"histogram_{os.getpid()}.db",
    }
    assert forget_dead_processes(folder) == []
