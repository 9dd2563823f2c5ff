"""Job kinds: parameter schemas and the simulated kind's clock."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

import pytest

from tasks_app.errors import InvalidParams, UnknownKind
from tasks_app.kinds import get_kind
from tasks_app.kinds.simulated import KIND as SIMULATED

NOBODY: Any = None  # the simulated kind does not look at the owner

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def job(**params):
    return SimpleNamespace(params={"step": 3, "interval_ms": 200, **params}, started_at=T0)


def at(ms: float) -> dt.datetime:
    return T0 + dt.timedelta(milliseconds=ms)


def test_get_kind_and_unknown_kind():
    assert get_kind("simulated") is SIMULATED
    with pytest.raises(UnknownKind, match="'x'"):
        get_kind("x")


def test_simulated_defaults_and_bounds():
    assert SIMULATED.validate({}, owner=NOBODY) == {"step": 3, "interval_ms": 200}
    assert SIMULATED.validate({"fail_at": 50}, owner=NOBODY)["fail_at"] == 50
    with pytest.raises(InvalidParams) as info:
        SIMULATED.validate({"step": True, "interval_ms": 10_001, "fail_at": 0, "extra": 1}, owner=NOBODY)
    assert info.value.fields == {
        "extra": ["unknown parameter"],
        "step": ["must be a whole number"],
        "interval_ms": ["Input should be less than or equal to 10000"],
        "fail_at": ["Input should be greater than or equal to 1"],
    }


def test_simulated_progress_follows_the_clock():
    j = job()
    assert SIMULATED.read(j, at(0)).progress.current == 0
    assert SIMULATED.read(j, at(199)).progress.current == 0
    reading = SIMULATED.read(j, at(200))
    assert (reading.progress.current, reading.progress.message, reading.succeeded) == (3, "step 1 of 34", False)
    assert SIMULATED.read(j, at(6599)).progress.current == 96
    done = SIMULATED.read(j, at(6800))
    assert (done.progress.current, done.succeeded, done.result["steps"]) == (100, True, 34)


def test_simulated_fail_at():
    reading = SIMULATED.read(job(fail_at=10), at(800))
    assert reading.failed
    assert reading.progress.current == 10
    assert "10%" in reading.error


def test_simulated_polls_just_after_each_step_boundary(settings):
    settings.PROGRESS_POLL_INTERVAL_MS = 200
    assert SIMULATED.next_poll_in_ms(job(interval_ms=1000), at(250)) == 755
    assert SIMULATED.next_poll_in_ms(job(interval_ms=50), at(10)) == 200  # never faster than the floor
