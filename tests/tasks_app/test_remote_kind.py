"""The ``remote`` kind's decisions (retries, backoff, outcomes) and the rate/ETA formulas.

The end-to-end behaviour against the demo service running as a real process is in
tests/integration/test_remote.py; here each decision is checked on its own.
"""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from proj.localredis import free_port
from tasks_app.errors import InvalidParams
from tasks_app.kinds.remote import KIND as REMOTE
from tasks_app.kinds.remote import Observed, ServiceConfig, backoff_ms, call, service_configs
from tasks_app.rate import add_sample, eta_seconds, progress_rate

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
NOBODY: Any = None


def job(**kind_state: Any) -> Any:
    return SimpleNamespace(
        id="0" * 32,
        state="running",
        params={"service": "demo", "payload": {}},
        kind_state=kind_state,
        progress_current=3,
        progress_total=10,
    )


def test_params_name_a_configured_service_never_a_url() -> None:
    assert REMOTE.validate({"service": "demo", "payload": {"duration_s": 1}}, owner=NOBODY) == {
        "service": "demo",
        "payload": {"duration_s": 1},
    }
    with pytest.raises(InvalidParams) as info:
        REMOTE.validate({"service": "http://169.254.169.254/", "payload": []}, owner=NOBODY)
    assert info.value.fields["service"][0].startswith("unknown service 'http://169.254.169.254/'")
    assert info.value.fields["payload"] == ["must be an object"]
    with pytest.raises(InvalidParams) as info:
        REMOTE.validate({"service": "demo", "payload": {"x": "y" * 20_000}}, owner=NOBODY)
    assert info.value.fields == {"payload": ["must be at most 16384 bytes of JSON"]}


def test_backoff_doubles_up_to_the_cap() -> None:
    config = ServiceConfig(base_url="http://x", backoff_base_ms=500, backoff_max_ms=3000)
    assert [backoff_ms(config, n) for n in range(1, 6)] == [500, 1000, 2000, 3000, 3000]


def test_a_bad_service_entry_is_a_configuration_error(settings: Any) -> None:
    settings.REMOTE_SERVICES = {"demo": {"base_url": "http://x", "timeout_s": -1}}
    with pytest.raises(ImproperlyConfigured, match=r"REMOTE_SERVICES\['demo'\] is invalid: timeout_s"):
        service_configs()


def test_transient_failures_are_retried_then_fail_after_max_attempts() -> None:
    reading = REMOTE.read(job(), T0, Observed("status", ok=False, status=503, reason="HTTP 503", transient=True))
    assert not reading.failed
    assert reading.retrying == {"attempt": 2, "max_attempts": 5, "next_attempt_in_s": 0.5, "reason": "HTTP 503"}
    assert reading.progress is not None
    assert reading.progress.message == "HTTP 503; retry 2 of 5 in 0.5 s"
    assert (reading.progress.current, reading.progress.total) == (3, 10)  # progress kept
    assert reading.kind_state is not None
    assert reading.kind_state["failures"] == 1
    later = job(**reading.kind_state)
    assert REMOTE.next_poll_in_ms(later, T0) == 500
    fourth = REMOTE.read(
        job(failures=3, first_failure_at=T0.isoformat()), T0, Observed("status", False, 503, {}, "x", True)
    )
    assert fourth.retrying is not None
    assert fourth.retrying["next_attempt_in_s"] == 4.0
    fifth = REMOTE.read(
        job(failures=4, first_failure_at=T0.isoformat()), T0, Observed("status", False, 503, {}, "x", True)
    )
    assert fifth.failed
    assert fifth.error == "service 'demo' could not be reached: 5 failed attempts in a row over 0.0 s; last error: x"


def test_the_deadline_fails_the_job_before_max_attempts() -> None:
    first = (T0 - dt.timedelta(seconds=301)).isoformat()
    reading = REMOTE.read(job(failures=1, first_failure_at=first), T0, Observed("status", False, None, {}, "t", True))
    assert reading.failed
    assert "2 failed attempts in a row over 301.0 s" in reading.error


def test_a_4xx_fails_at_once_and_a_success_clears_the_retry_state() -> None:
    refused = REMOTE.read(job(), T0, Observed("start", ok=False, status=400, reason="HTTP 400: invalid payload"))
    assert refused.failed
    assert refused.error == "service 'demo' refused to start the job: HTTP 400: invalid payload"
    retried = job(remote_id="r1", failures=2, first_failure_at=T0.isoformat(), next_in_ms=1000)
    body = {"state": "running", "progress": {"current": 4, "total": 10, "message": "0.4 of 1.0 s"}}
    ok = REMOTE.read(retried, T0, Observed("status", ok=True, status=200, body=body))
    assert ok.retrying is None
    assert ok.kind_state == {"remote_id": "r1"}
    assert ok.progress is not None
    assert (ok.progress.current, ok.progress.total, ok.progress.message) == (4, 10, "0.4 of 1.0 s")


@pytest.mark.parametrize(
    ("body", "outcome"),
    [
        ({"state": "succeeded", "progress": {"current": 10, "total": 10}, "result": {"a": 1}}, ("succeeded", "")),
        ({"state": "failed", "error": "disk full"}, ("failed", "service 'demo' reported: disk full")),
        ({"state": "cancelled"}, ("failed", "the job was cancelled on service 'demo'")),
        ({"state": "exploded"}, ("failed", "service 'demo' sent an unknown state 'exploded'")),
        (
            {"state": "running", "progress": {"current": "lots"}},
            ("failed", "service 'demo' sent progress that is not numbers"),
        ),
    ],
)
def test_status_answers_map_to_outcomes(body: dict[str, Any], outcome: tuple[str, str]) -> None:
    reading = REMOTE.read(job(remote_id="r1"), T0, Observed("status", ok=True, status=200, body=body))
    state = "succeeded" if reading.succeeded else "failed" if reading.failed else "running"
    assert (state, reading.error) == outcome


def test_start_keeps_the_remote_id() -> None:
    reading = REMOTE.read(job(), T0, Observed("start", ok=True, status=201, body={"id": "abc"}))
    assert reading.kind_state == {"remote_id": "abc"}
    missing = REMOTE.read(job(), T0, Observed("start", ok=True, status=201, body={}))
    assert missing.failed


def test_cancel_is_confirmed_only_after_the_delete_was_sent() -> None:
    assert not REMOTE.cancel_confirmed(job(), Observed("status", ok=True))
    assert not REMOTE.cancel_confirmed(job(), None)
    assert REMOTE.cancel_confirmed(job(), Observed("cancel", ok=False, status=409, reason="HTTP 409"))


def test_a_real_refused_connection_is_transient() -> None:
    config = ServiceConfig(base_url=f"http://127.0.0.1:{free_port()}", timeout_s=2)
    observed = call(config, "status", "GET", "/jobs/x")
    assert (observed.ok, observed.transient, observed.reason) == (False, True, "cannot connect (ConnectError)")


def test_rate_is_the_least_squares_slope_over_the_window() -> None:
    samples: list[list[float]] = []
    for i in range(30):
        samples = add_sample(samples, i * 0.5, i * 5)  # 10 units per second
    assert samples[0][0] == 4.5  # older than 10 s before the newest: dropped
    assert progress_rate(samples) == 10.0
    assert eta_seconds(145, 245, 10.0) == 10.0
    noisy = [[0.0, 0], [1.0, 12], [2.0, 18], [3.0, 30]]
    assert progress_rate(noisy) == 9.6  # OLS: sum((t-1.5)(c-15)) / sum((t-1.5)^2) = 48 / 5
    assert progress_rate([[0.0, 0]]) is None
    assert progress_rate([[0.0, 0], [0.1, 5]]) is None  # span too short to tell
    assert eta_seconds(5, None, 1.0) is None
    assert eta_seconds(5, 10, 0.0) is None
    assert eta_seconds(10, 10, None) is None
