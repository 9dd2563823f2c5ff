"""``manage.py jobs``: argument parsing, error reports, exit statuses, the display, and the
watcher fed by a real (in-memory) channel layer over a real SQLite database.

(Over ~350 lines: the command's cases (parsing, refusals, exit statuses, the display, the
watcher) share one set of jobs and the in-memory layer.)
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import uuid
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from rich.console import Console

from realtime import messaging, watchdisplay
from realtime.follower import SOURCE_EVENT
from realtime.management.commands import jobs
from tasks_app.errors import InvalidParams, UnknownKind
from tasks_app.jobobject import JobObject
from tasks_app.models import Job, JobState
from tasks_app.selectors import job_snapshot
from tests.factories import make_job_in_progress
from tests.waiting import wait_for_async


def run_jobs(*args: str, **options: Any) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("jobs", *args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


# --- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("step=5", ("step", 5)),
        ("fail=true", ("fail", True)),
        ('payload={"a": 1}', ("payload", {"a": 1})),
        ("ratio=0.5", ("ratio", 0.5)),
        ("nothing=null", ("nothing", None)),
        ("name=hello world", ("name", "hello world")),
        ('code="5"', ("code", "5")),
        ("expr=a=b", ("expr", "a=b")),
        ("empty=", ("empty", "")),
    ],
)
def test_param_value_is_json_when_it_parses_else_a_string(text, expected):
    assert jobs.parse_param(text) == expected


@pytest.mark.parametrize("text", ["step", "=5", " =5"])
def test_param_without_key_or_equals_is_a_usage_error(text):
    with pytest.raises(CommandError) as caught:
        jobs.parse_param(text)
    assert caught.value.returncode == jobs.EXIT_USAGE
    assert "KEY=VALUE" in str(caught.value)


def test_params_json_is_the_base_and_each_param_overrides_it():
    params = jobs.parse_params(["step=7", "fail_at=50"], '{"step": 2, "interval_ms": 100}')
    assert params == {"step": 7, "interval_ms": 100, "fail_at": 50}


@pytest.mark.parametrize(("raw", "says"), [("[1, 2]", "JSON object"), ("{step: 1}", "not valid JSON")])
def test_params_json_must_be_a_json_object(raw, says):
    with pytest.raises(CommandError) as caught:
        jobs.parse_params([], raw)
    assert caught.value.returncode == jobs.EXIT_USAGE
    assert says in str(caught.value)


def test_describe_error_names_the_code_and_every_field_message():
    text = jobs.describe_error(InvalidParams({"step": ["too small", "not even"], "fail_at": ["bad"]}))
    assert text.splitlines() == [
        "invalid_params: invalid parameters",
        "  fail_at: bad",
        "  step: too small",
        "  step: not even",
    ]
    assert jobs.describe_error(UnknownKind("no job kind 'nope'")) == "unknown_kind: no job kind 'nope'"


@pytest.mark.parametrize(
    "argv",
    [[], ["frobnicate"], ["start"], ["watch"], ["watch", "x", "--bogus"], ["start", "simulated", "--watch=1"]],
)
def test_usage_errors_exit_64_not_argparse_2_which_means_cancelled(argv, capsys):
    command = jobs.Command()
    command._called_from_command_line = True  # type: ignore[attr-defined]  # what run_from_argv sets
    parser = command.create_parser("manage.py", "jobs")
    with pytest.raises(SystemExit) as caught:
        parser.parse_args(argv)
    assert caught.value.code == jobs.EXIT_USAGE
    assert "error:" in capsys.readouterr().err


# --- start, cancel and refusals (no watching) ---------------------------------------------------


@pytest.mark.django_db
def test_start_prints_the_id_of_a_pending_job_with_the_parsed_params(user):
    out, _ = run_jobs("start", "simulated", "--param", "step=5", "--param", "interval_ms=100", "--user", "alice")
    job = Job.objects.get(id=uuid.UUID(out.strip()))
    assert (job.owner, job.kind, job.state) == (user, "simulated", JobState.PENDING)
    assert job.params["step"] == 5
    assert job.params["interval_ms"] == 100


@pytest.mark.django_db
def test_start_keeps_info_log_lines_off_stderr_unless_verbose(user, caplog):
    caplog.set_level(logging.INFO)
    run_jobs("start", "simulated", "--user", "alice")
    assert [r.getMessage() for r in caplog.records if r.name.startswith("tasks_app")] == []
    run_jobs("start", "simulated", "--user", "alice", verbosity=2)
    assert any("created for user" in r.getMessage() for r in caplog.records)
    assert logging.getLogger("tasks_app").level == logging.NOTSET  # restored


@pytest.mark.django_db
def test_start_json_prints_the_job_object(user):
    out, _ = run_jobs("start", "simulated", "--params-json", '{"step": 4}', "--user", "alice", "--json")
    job = json.loads(out)
    assert job == job_snapshot(Job.objects.get(id=job["id"]))
    assert job["params"]["step"] == 4


@pytest.mark.django_db
def test_same_idempotency_key_returns_the_same_job(user):
    args = ("start", "simulated", "--user", "alice", "--idempotency-key", "k-1")
    first, _ = run_jobs(*args)
    again, _ = run_jobs(*args)
    assert first == again
    assert Job.objects.count() == 1


@pytest.mark.django_db
def test_unknown_kind_is_refused_with_its_code_and_nothing_starts(user):
    with pytest.raises(CommandError) as caught:
        run_jobs("start", "no-such-kind", "--user", "alice")
    assert caught.value.returncode == jobs.EXIT_REFUSED
    assert str(caught.value).startswith("unknown_kind: ")
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_invalid_params_are_refused_with_every_field_message(user):
    with pytest.raises(CommandError) as caught:
        run_jobs("start", "simulated", "--param", "step=0", "--param", "interval_ms=fast", "--user", "alice")
    assert caught.value.returncode == jobs.EXIT_REFUSED
    cause = caught.value.__cause__
    assert isinstance(cause, InvalidParams)
    assert {"step", "interval_ms"} <= set(cause.fields)
    text = str(caught.value)
    assert text.startswith("invalid_params: ")
    for name, messages in cause.fields.items():
        for message in messages:
            assert f"  {name}: {message}" in text
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_unknown_user_is_refused(user):
    with pytest.raises(CommandError) as caught:
        run_jobs("start", "simulated", "--user", "nobody")
    assert caught.value.returncode == jobs.EXIT_REFUSED
    assert "no user 'nobody'" in str(caught.value)


@pytest.mark.django_db
def test_user_defaults_to_demo_username(user, settings):
    settings.DEMO_USERNAME = "alice"
    out, _ = run_jobs("start", "simulated")
    assert Job.objects.get(id=out.strip()).owner == user


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["watch", "cancel"])
def test_another_users_job_or_a_bad_id_is_not_found(user, other_user, action):
    job = make_job_in_progress(other_user)
    for job_id in (str(job.id), str(uuid.uuid4()), "not-a-uuid"):
        with pytest.raises(CommandError) as caught:
            run_jobs(action, job_id, "--user", "alice")
        assert caught.value.returncode == jobs.EXIT_REFUSED
        assert str(caught.value) == f"not_found: job {job_id} not found"
    job.refresh_from_db()
    assert job.state == JobState.RUNNING


@pytest.mark.django_db
def test_cancel_a_pending_job_then_again_is_not_cancellable(user, memory_layer):
    out, _ = run_jobs("start", "simulated", "--user", "alice")
    job_id = out.strip()
    out, _ = run_jobs("cancel", job_id, "--user", "alice")
    assert out.split() == [job_id, "cancelled"]
    assert Job.objects.get(id=job_id).state == JobState.CANCELLED
    with pytest.raises(CommandError) as caught:
        run_jobs("cancel", job_id, "--user", "alice")
    assert caught.value.returncode == jobs.EXIT_REFUSED
    assert str(caught.value).startswith("not_cancellable: ")


# --- watching a job that is already final: report lines and exit statuses --------------------


@pytest.mark.django_db(transaction=True)
def test_watch_a_succeeded_job_prints_the_result_line(user, memory_layer):
    job = make_job_in_progress(user, JobState.SUCCEEDED, result={"steps": 10, "step": 10}, progress_current=100, seq=13)
    out, err = run_jobs("watch", str(job.id), "--user", "alice")
    assert out.splitlines()[-1] == 'result: {"steps": 10, "step": 10}'
    assert "error:" not in err


@pytest.mark.django_db(transaction=True)
def test_watch_json_prints_only_the_final_job_object(user, memory_layer):
    job = make_job_in_progress(user, JobState.SUCCEEDED, result={"steps": 10}, progress_current=100, seq=13)
    out, _ = run_jobs("watch", str(job.id), "--user", "alice", "--json")
    assert json.loads(out) == job_snapshot(job)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("state", "status", "line"),
    [
        (JobState.FAILED, jobs.EXIT_FAILED, "error: simulated failure at 30%"),
        (JobState.CANCELLED, jobs.EXIT_CANCELLED, "was cancelled at 30/100"),
    ],
)
def test_watch_a_failed_or_cancelled_job_exits_with_its_status(user, memory_layer, state, status, line):
    job = make_job_in_progress(user, state, error="simulated failure at 30%" if state == JobState.FAILED else "")
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(SystemExit) as caught:
        call_command("jobs", "watch", str(job.id), "--user", "alice", stdout=out, stderr=err)
    assert caught.value.code == status
    assert line in err.getvalue()
    assert "result:" not in out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_quiet_watch_draws_no_bar_and_trace_names_each_frames_source(user, memory_layer):
    job = make_job_in_progress(user, JobState.SUCCEEDED, result={}, progress_current=100, seq=13)
    _, quiet = run_jobs("watch", str(job.id), "--user", "alice", verbosity=0)
    assert quiet == ""
    _, traced = run_jobs("watch", str(job.id), "--user", "alice", verbosity=2)
    assert f"watching job {job.id} (group {messaging.job_group(job.id)})" in traced
    assert "seq 13 succeeded 100/100 (via snapshot)" in traced


# --- the watcher: fed by the channel layer, seq order, resync ---------------------------------


@pytest.fixture
def running_job(transactional_db: None, user: Any) -> Job:
    return make_job_in_progress(user)


async def joined(layer: Any, job: Job, timeout: float = 5) -> None:
    """Until the watcher's channel is in the job's group (the in-memory layer's own table)."""

    async def in_group() -> bool:
        return bool(layer.groups.get(messaging.job_group(job.id)))

    await wait_for_async(in_group, timeout, interval=0.01, desc=f"the watcher to join job {job.id}'s group")


def event(job: Job, **changes: Any) -> dict[str, Any]:
    return messaging.job_event({**job_snapshot(job), **changes})


async def test_watch_is_fed_by_the_channel_layer_and_drops_stale_seq(running_job, user, memory_layer):
    seen: list[tuple[int, str, str]] = []
    watching = asyncio.ensure_future(
        jobs.watch_owned_job(user, str(running_job.id), on_update=lambda j, src: seen.append((j.seq, j.state, src)))
    )
    await joined(memory_layer, running_job)
    group = messaging.job_group(running_job.id)
    progress = {"current": 60, "total": 100, "percent": 60.0, "message": "step 6 of 10"}
    await memory_layer.group_send(group, event(running_job, seq=4, state="failed", error="stale"))
    await memory_layer.group_send(group, event(running_job, seq=5))
    await memory_layer.group_send(group, event(running_job, seq=6, progress=progress))
    await memory_layer.group_send(group, {"type": "something.else", "job": None})
    await memory_layer.group_send(group, event(running_job, seq=7, state="succeeded", result={"steps": 10}))
    final = await asyncio.wait_for(watching, 5)
    assert final.state == "succeeded"
    assert final.result == {"steps": 10}
    assert seen == [(5, "running", "snapshot"), (6, "running", "event"), (7, "succeeded", "event")]
    # The database never said succeeded: the end came over the channel layer.
    assert (await database_sync_to_async(Job.objects.get)(pk=running_job.pk)).state == JobState.RUNNING
    assert not memory_layer.groups.get(group), "the watcher leaves the group"


async def test_watch_resyncs_from_the_database_when_events_are_lost(running_job, user, memory_layer):
    seen: list[tuple[int, str]] = []
    watching = asyncio.ensure_future(
        jobs.watch_owned_job(
            user, str(running_job.id), on_update=lambda j, src: seen.append((j.seq, src)), resync_after_s=0.05
        )
    )
    await joined(memory_layer, running_job)
    # A change saved without any event reaching the watcher (group_send dropped it).
    await database_sync_to_async(
        lambda: Job.objects.filter(pk=running_job.pk).update(
            state=JobState.SUCCEEDED, result={"steps": 10}, progress_current=100, seq=6, finished_at=timezone.now()
        )
    )()
    final = await asyncio.wait_for(watching, 5)
    assert (final.state, final.result, final.progress.current) == ("succeeded", {"steps": 10}, 100)
    assert seen == [(5, "snapshot"), (6, "resync")]


# --- the display -------------------------------------------------------------------------------


def render(job: dict[str, Any], *jobs_after: dict[str, Any]) -> str:
    out = io.StringIO()
    console = Console(file=out, width=200, force_terminal=False, no_color=True)
    with watchdisplay.JobDisplay(console, visible=True, trace=False) as display:
        for j in (job, *jobs_after):
            display.update(JobObject.model_validate(j), SOURCE_EVENT)
    return out.getvalue()


JOB: dict[str, Any] = {
    "id": "1a2b3c4d-0000-4000-8000-000000000000",
    "kind": "csv_profile",
    "title": "CSV profile",
    "summary": "",
    "params": {},
    "created_at": "2026-01-01T09:59:59+00:00",
    "state": "running",
    "progress": {"current": 420, "total": 1000, "percent": 42.0, "message": "reading"},
    "result": None,
    "error": None,
    "seq": 3,
    "started_at": "2026-01-01T10:00:00+00:00",
    "finished_at": "2026-01-01T10:01:05+00:00",
}


def test_display_shows_kind_short_id_percent_count_elapsed_and_message():
    text = render(JOB)
    for part in ("csv_profile 1a2b3c4d", " 42.0%", "420/1000", "0:01:05", "reading"):
        assert part in text, (part, text)
    assert "/s" not in text
    assert "eta" not in text
    assert "retrying" not in text


def test_display_shows_rate_eta_and_retrying_when_present():
    job = {
        **JOB,
        "progress": {**JOB["progress"], "rate": 2.5, "eta_seconds": 232},
        "retrying": {"attempt": 2, "max_attempts": 5, "next_attempt_in_s": 4, "reason": "HTTP 503"},
    }
    text = render(job)
    assert "reading · 2.5/s · eta 0:03:52 · retrying (attempt 2/5): HTTP 503" in text


def test_display_tolerates_null_rate_eta_retrying_and_unknown_total():
    job = {
        **JOB,
        "state": "cancelling",
        "progress": {"current": 7, "total": None, "percent": None, "message": "", "rate": None, "eta_seconds": None},
        "retrying": None,
        "started_at": None,
    }
    text = render(job)
    for part in ("?%", "7/?", "-:--:--", "[cancelling]"):
        assert part in text, (part, text)


@pytest.mark.parametrize(
    ("retrying", "text"),
    [
        (None, ""),
        ({}, ""),
        (True, "retrying"),
        ({"attempt": 3}, "retrying (attempt 3)"),
        ({"error": "timeout"}, "retrying: timeout"),
    ],
)
def test_describe_retrying_tolerates_its_shape(retrying, text):
    assert watchdisplay.describe_retrying(retrying) == text
