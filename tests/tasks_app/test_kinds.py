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


# ------------------------------------------------------- titles and summaries


def test_builtin_kinds_have_a_title_and_summarise_their_parameters():
    assert (get_kind("simulated").title, get_kind("csv_profile").title) == ("Simulated job", "CSV profile")
    assert (get_kind("remote").title, get_kind("primes").title) == ("Remote job", "Count primes")
    simulated = get_kind("simulated")
    assert simulated.summary({"step": 3, "interval_ms": 1200}) == "step 3% every 1,200 ms"
    assert simulated.summary({"step": 5, "interval_ms": 200, "fail_at": 40}) == "step 5% every 200 ms, fails at 40%"
    remote = get_kind("remote")
    assert remote.summary({"service": "demo", "payload": {}}) == "on demo"
    payload = {"duration_s": 3600, "unavailable_s": 2, "fail": True}
    assert remote.summary({"service": "demo", "payload": payload}) == (
        "on demo, 3,600 s, unavailable for 2 s, fails at the end"
    )
    assert remote.summary({"service": "demo", "payload": {"duration_s": True, "fail": "yes"}}) == "on demo"
    csv = get_kind("csv_profile")
    assert csv.summary({"upload_id": "u", "name": "flights.csv", "size": 31_053_850}) == "flights.csv, 31.1 MB"
    assert csv.summary({"upload_id": "u"}) == "upload"  # a job stored before sizes were kept
    assert get_kind("primes").summary({"limit": 100_000}) == "below 100,000"
    assert get_kind("primes").summary({}) == "below 100,000"  # the model's default


def test_the_progress_total_of_a_csv_profile_is_its_size_from_the_start():
    assert get_kind("csv_profile").initial_total({"upload_id": "u", "name": "a.csv", "size": 420}) == 420
    assert get_kind("simulated").initial_total({"step": 3, "interval_ms": 200}) is None
    assert get_kind("primes").initial_total({"limit": 10}) is None


def test_a_kind_without_a_title_is_called_by_its_name_in_words():
    from pydantic import BaseModel

    from tasks_app.kinds import JobKind
    from tasks_app.kinds.base import default_title

    class Resize(JobKind):
        name = "image_resize-batch"
        params_model = BaseModel

    assert Resize.title == default_title("image_resize-batch") == "Image resize batch"
    assert Resize().summary({"anything": 1}) == ""
    assert Resize().initial_total({}) is None


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (0, "0 bytes"),
        (999, "999 bytes"),
        (1000, "1.0 KB"),
        (210_365, "210 KB"),
        (10_300_000, "10.3 MB"),
        (31_053_850, "31.1 MB"),
        (99_949_999, "99.9 MB"),
        (1_234_567_890_123, "1.2 TB"),
        (5_000_000_000_000_000, "5,000 TB"),
    ],
)
def test_human_bytes(size: int, shown: str) -> None:
    from tasks_app.formatting import human_bytes

    assert human_bytes(size) == shown
