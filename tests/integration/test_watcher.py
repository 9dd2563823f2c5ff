"""``manage.py jobs`` as a real process against the real stack (Daphne, Celery workers on
Redis, SQLite): start, watch (fed by the channel layer), cancel, refusals and exit statuses."""

from __future__ import annotations

import asyncio
import json
import queue
import signal
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass
from typing import IO, Any

import pytest

from realtime.management.commands.jobs import (
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_REFUSED,
    EXIT_SUCCEEDED,
    EXIT_USAGE,
)
from tests.integration.stack import OTHER_USER, ROOT, HttpSession, Stack
from tests.integration.wsclient import JobsClient

pytestmark = pytest.mark.integration

#: Seconds any one command may take (a watch includes the job's own run time).
COMMAND_TIMEOUT_S = 120
#: Seconds to wait for one line a running watcher prints.
LINE_TIMEOUT_S = 60


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def result(self) -> Any:
        """The JSON after the ``result:`` label (the last such line on stdout)."""
        line = next(ln for ln in reversed(self.out.splitlines()) if ln.startswith("result: "))
        return json.loads(line.removeprefix("result: "))


def jobs_argv(*args: str) -> list[str]:
    return [sys.executable, "manage.py", "jobs", *args]


def run_jobs(stack: Stack, *args: str) -> Result:
    """``manage.py jobs ARGS`` in the stack's environment (as ``Stack.manage`` runs commands)."""
    done = subprocess.run(
        jobs_argv(*args), cwd=ROOT, env=stack.env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S
    )
    return Result(done.returncode, done.stdout, done.stderr)


def job_states(stack: Stack) -> dict[str, str]:
    """``id → state`` of every job in the stack's database, read by a separate process."""
    code = (
        "import json; from tasks_app.models import Job; "
        "print(json.dumps({str(i): s for i, s in Job.objects.values_list('id', 'state')}))"
    )
    return json.loads(stack.manage("shell", "--no-imports", "-c", code).strip().splitlines()[-1])


def start(stack: Stack, *params: str) -> str:
    """Start a simulated job (no watch) and return its id."""
    args = [item for param in params for item in ("--param", param)]
    started = run_jobs(stack, "start", "simulated", *args)
    assert started.code == EXIT_SUCCEEDED, started.err
    return str(uuid.UUID(started.out.strip()))


class Watcher:
    """``manage.py jobs -v 2 watch JOB_ID`` running in the background; its stderr lines are
    read as they come (``-v 2`` traces every frame taken and where it came from)."""

    def __init__(self, stack: Stack, job_id: str) -> None:
        self.proc = subprocess.Popen(
            jobs_argv("-v", "2", "watch", job_id),
            cwd=ROOT,
            env=stack.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.err: list[str] = []
        assert self.proc.stderr is not None
        self.reader = threading.Thread(target=self._read, args=(self.proc.stderr,), daemon=True)
        self.reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.err.append(line)
            self.lines.put(line)

    def wait_for_line(self, text: str) -> str:
        while True:
            try:
                line = self.lines.get(timeout=LINE_TIMEOUT_S)
            except queue.Empty:
                self.proc.kill()
                raise AssertionError(f"watcher printed no line with {text!r}:\n{''.join(self.err)}") from None
            if text in line:
                return line

    def finish(self) -> Result:
        rest = ""
        try:
            # communicate() reads stderr too, racing the reader thread: keep what it got.
            out, rest = self.proc.communicate(timeout=COMMAND_TIMEOUT_S)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        self.reader.join(10)
        return Result(self.proc.returncode, out, "".join(self.err) + (rest or ""))


def test_start_watch_runs_to_succeeded_and_prints_the_result(stack: Stack) -> None:
    done = run_jobs(stack, "start", "simulated", "--param", "step=25", "--param", "interval_ms=100", "--watch")
    assert done.code == EXIT_SUCCEEDED, done.err
    job_id = done.out.splitlines()[0]
    assert str(uuid.UUID(job_id)) == job_id
    assert (done.result["steps"], done.result["step"]) == (4, 25)
    assert set(done.result) == {"steps", "step", "simulated_ms"}
    assert "error:" not in done.err
    assert "Traceback" not in done.err
    assert f"simulated {job_id[:8]}" in done.err, "the final progress line names the kind and short id"
    assert job_states(stack)[job_id] == "succeeded"


def test_start_watch_json_prints_only_the_final_job_object(stack: Stack) -> None:
    done = run_jobs(
        stack, "start", "simulated", "--params-json", '{"step": 50, "interval_ms": 100}', "--watch", "--json"
    )
    assert done.code == EXIT_SUCCEEDED, done.err
    job = json.loads(done.out)
    assert job["state"] == "succeeded"
    assert job["params"] == {"step": 50, "interval_ms": 100}
    assert job["progress"]["current"] == job["progress"]["total"] == 100
    assert job["result"]["steps"] == 2


def test_failing_job_exits_1_with_the_error_on_stderr(stack: Stack) -> None:
    done = run_jobs(
        stack,
        "start",
        "simulated",
        "--param",
        "step=25",
        "--param",
        "interval_ms=100",
        "--param",
        "fail_at=50",
        "--watch",
    )
    assert done.code == EXIT_FAILED, done.err
    assert "error: simulated failure at 50% (fail_at=50)" in done.err.splitlines()
    assert "result:" not in done.out
    assert job_states(stack)[done.out.splitlines()[0]] == "failed"


async def test_watch_a_job_started_over_the_websocket(demo: HttpSession, stack: Stack) -> None:
    client = await JobsClient.open(demo)
    accepted = await client.answer(
        {"type": "job.start", "kind": "simulated", "params": {"step": 20, "interval_ms": 100}}
    )
    assert accepted["type"] == "job.accepted", accepted
    job_id = accepted["job"]["id"]
    done = await asyncio.to_thread(run_jobs, stack, "watch", job_id)
    assert done.code == EXIT_SUCCEEDED, done.err
    assert (done.result["steps"], done.result["step"]) == (5, 20)
    socket_final = (await client.until_final(job_id, timeout=30))[-1]["job"]
    watched = await asyncio.to_thread(run_jobs, stack, "watch", job_id, "--json")
    assert watched.code == EXIT_SUCCEEDED, watched.err
    watched_final = json.loads(watched.out)
    for key in ("id", "state", "seq", "result"):
        assert watched_final[key] == socket_final[key], key
    await client.close()


def test_watch_a_job_started_by_the_command(stack: Stack) -> None:
    job_id = start(stack, "step=34", "interval_ms=100")
    done = run_jobs(stack, "watch", job_id)
    assert done.code == EXIT_SUCCEEDED, done.err
    assert done.result["steps"] == 3


def test_live_frames_come_over_the_channel_layer_then_jobs_cancel_ends_it_with_2(stack: Stack) -> None:
    job_id = start(stack, "step=1", "interval_ms=200")
    watcher = Watcher(stack, job_id)
    watcher.wait_for_line("(via snapshot)")
    watcher.wait_for_line("running")
    assert "(via event)" in watcher.wait_for_line("(via event)")
    cancel = run_jobs(stack, "cancel", job_id)
    assert cancel.code == EXIT_SUCCEEDED, cancel.err
    assert cancel.out.split() in ([job_id, "cancelling"], [job_id, "cancelled"])
    done = watcher.finish()
    assert done.code == EXIT_CANCELLED, done.err
    assert f"cancelled: job {job_id} was cancelled at " in done.err
    assert "result:" not in done.out
    seqs = [int(line.split()[1]) for line in done.err.splitlines() if line.startswith("seq ")]
    assert seqs == sorted(set(seqs)), "frames are taken in rising seq order, each once"
    assert job_states(stack)[job_id] == "cancelled"
    again = run_jobs(stack, "cancel", job_id)
    assert again.code == EXIT_REFUSED
    assert "not_cancellable" in again.err


def test_ctrl_c_stops_watching_with_130_and_the_job_keeps_running(stack: Stack) -> None:
    job_id = start(stack, "step=1", "interval_ms=200")
    watcher = Watcher(stack, job_id)
    watcher.wait_for_line("(via event)")
    watcher.proc.send_signal(signal.SIGINT)
    done = watcher.finish()
    assert done.code == EXIT_INTERRUPTED, done.err
    assert f"stopped watching; job {job_id} keeps running (stop it with: manage.py jobs cancel {job_id})" in done.err
    assert "Traceback" not in done.err
    assert job_states(stack)[job_id] == "running"
    assert run_jobs(stack, "cancel", job_id).code == EXIT_SUCCEEDED


def test_unknown_kind_is_refused_and_starts_nothing(stack: Stack) -> None:
    before = job_states(stack)
    done = run_jobs(stack, "start", "no_such_kind", "--watch")
    assert done.code == EXIT_REFUSED
    assert "unknown_kind" in done.err
    assert "Traceback" not in done.err
    assert done.out == ""
    assert job_states(stack) == before


def test_invalid_params_are_refused_with_the_field_message(stack: Stack) -> None:
    from django.contrib.auth.models import User

    from tasks_app.errors import InvalidParams
    from tasks_app.kinds import get_kind

    with pytest.raises(InvalidParams) as expected:
        get_kind("simulated").validate({"step": 0}, owner=User(username="demo"))
    before = job_states(stack)
    done = run_jobs(stack, "start", "simulated", "--param", "step=0", "--watch")
    assert done.code == EXIT_REFUSED
    assert "invalid_params" in done.err
    for message in expected.value.fields["step"]:
        assert f"  step: {message}" in done.err.splitlines()
    assert "Traceback" not in done.err
    assert job_states(stack) == before


def test_another_users_job_is_not_found(stack: Stack) -> None:
    job_id = start(stack, "step=50", "interval_ms=100")
    for action in ("watch", "cancel"):
        done = run_jobs(stack, action, job_id, "--user", OTHER_USER[0])
        assert done.code == EXIT_REFUSED, done
        assert f"not_found: job {job_id} not found" in done.err
        assert "Traceback" not in done.err
    mine = run_jobs(stack, "watch", job_id)
    assert mine.code == EXIT_SUCCEEDED, "mallory's cancel did not touch demo's job"


def test_unknown_user_and_bad_usage_are_errors(stack: Stack) -> None:
    nobody = run_jobs(stack, "start", "simulated", "--user", "nobody")
    assert nobody.code == EXIT_REFUSED
    assert "no user 'nobody'" in nobody.err
    usage = run_jobs(stack, "start")
    assert usage.code == EXIT_USAGE
    assert "usage: manage.py jobs start" in usage.err
    bad_param = run_jobs(stack, "start", "simulated", "--param", "step")
    assert bad_param.code == EXIT_USAGE
    assert "expected KEY=VALUE" in bad_param.err
