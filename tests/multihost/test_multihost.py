"""Several machines, one system (README "Running on several machines"): hosts ``a`` and ``b`` each
run web, worker-jobs, worker-progress and beat; host ``c`` runs PostgreSQL and a Redis primary,
a replica and three Sentinels. Hosts are network namespaces on a private bridge
(tests/multihost/netns.py); every process is the Procfile's, every client talks over the network.

Each case asserts that every job reaches its final state, that ``seq`` never goes backwards on a
socket and that nothing follows a final frame. Figures are printed as ``multihost:`` lines (``-s``).
"""

from __future__ import annotations

import asyncio
import base64
import time
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.integration.stack import DEMO_PASSWORD, HttpSession
from tests.integration.wsclient import FINAL, Frame, Viewer, progressing
from tests.multihost.apphosts import AppCluster, AppHost
from tests.multihost.cluster import SentinelCluster
from tests.scrape import parse, total
from tests.waiting import wait_for, wait_for_async

pytestmark = pytest.mark.multihost

#: pi(600,000): the primes job's known answer (as in the fault suite).
PRIMES_LIMIT, PRIMES_BELOW_LIMIT = 600_000, 49_098
#: Seconds from the primary's death until every running job has moved again: the Sentinels'
#: failover (down-after 1 s, then an election) plus the recovery bound of DESIGN.md (15 s).
FAILOVER_BOUND_S = 25.0
#: Seconds the failover test's simulated job runs without a fault (100 steps of 150 ms); each job
#: of that test must be final within this plus ``FAILOVER_BOUND_S`` of the kill.
SIMULATED_S = 15.0
#: Seconds from a whole host's death until each of its jobs runs again on the other host: the
#: heartbeat timeout (``JOB_HEARTBEAT_TIMEOUT_S``, 10 s) plus the recovery bound (15 s).
HOST_LOSS_BOUND_S = 25.0
#: The per-user active-job limit of the settings (``JOBS_MAX_ACTIVE_PER_USER``).
ACTIVE_LIMIT = 20


@pytest.fixture(autouse=True)
async def closing() -> AsyncIterator[None]:
    yield
    while Viewer.opened:
        await Viewer.opened.pop().close()


@pytest.fixture
def apps(apps_started: AppCluster, redis_cluster: SentinelCluster) -> AppCluster:
    """Every application process running and answering (whatever an earlier test killed is
    started again), on a healthy Sentinel cluster."""
    apps_started.start()
    return apps_started


@pytest.fixture
def sessions(apps: AppCluster) -> dict[str, HttpSession]:
    """The demo user logged in on each host's web process."""
    return {name: HttpSession(app_host).login("demo", DEMO_PASSWORD) for name, app_host in apps.hosts.items()}


def layer_reconnects(app_host: AppHost) -> float:
    """``jobs_layer_redis_reconnects_total`` of the host's web process, scraped from its
    ``/metrics`` over the network with the demo user's basic auth (README "Metrics")."""
    credentials = base64.b64encode(f"demo:{DEMO_PASSWORD}".encode()).decode()
    request = urllib.request.Request(f"{app_host.http_url}/metrics", headers={"Authorization": f"Basic {credentials}"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return total(parse(resp.read().decode()), "jobs_layer_redis_reconnects_total")


def report(what: str, seconds: float) -> None:
    print(f"\nmultihost: {what}: {seconds:.1f} s")


def seqs(viewer: Viewer, job_id: str) -> list[int]:
    return [frame["job"]["seq"] for _, frame in viewer.of(job_id)]


async def subscribe(viewer: Viewer, job_id: str) -> Frame:
    snapshot = await viewer.send({"type": "job.subscribe", "job_id": job_id})
    assert snapshot["type"] == "job.snapshot", snapshot
    return snapshot


def worker_of(apps: AppCluster, job_ids: set[str]) -> dict[str, str]:
    """``job id → node name`` of the workers running a work task of each job now (Celery's
    ``inspect active``: a task's first argument is its job id)."""
    active = apps.celery.control.inspect(timeout=2.0).active() or {}
    return {
        str(task["args"][0]): node
        for node, tasks in active.items()
        for task in tasks
        if task["args"] and str(task["args"][0]) in job_ids
    }


async def test_a_job_started_on_a_is_watched_from_b_and_from_a_with_every_frame(
    apps: AppCluster, sessions: dict[str, HttpSession]
) -> None:
    on_a, on_b = await Viewer.open(sessions["a"]), await Viewer.open(sessions["b"])
    job = await on_a.start("simulated", {"step": 4, "interval_ms": 100})
    await subscribe(on_b, job)
    final_a, final_b = await on_a.final(job, 60), await on_b.final(job, 60)
    assert final_a["type"] == final_b["type"] == "job.succeeded"
    assert final_a["job"]["seq"] == final_b["job"]["seq"]
    for viewer in (on_a, on_b):
        viewer.assert_sane(job)
    # Every change since B's snapshot reached B exactly as it reached A, through the channel
    # layer of the other host: same sequence numbers, in the same order.
    from_b = seqs(on_b, job)
    assert len(from_b) >= 10, from_b
    assert from_b == [s for s in seqs(on_a, job) if s >= from_b[0]]


async def finals_of(viewer: Viewer, job_ids: list[str], timeout: float = 120) -> dict[str, Frame]:
    """The final frame of each job on ``viewer``'s socket (frames are stamped as they arrive:
    run one of these per socket at once, with :func:`asyncio.gather`)."""
    return {job: await viewer.final(job, timeout) for job in job_ids}


def attempts(apps: AppCluster, job_ids: set[str]) -> dict[str, int]:
    """``job id → attempt`` (the run of its work, 1 for the first) from the shared database."""
    with apps.postgres.connect() as conn:
        rows = conn.execute("SELECT id::text, attempt FROM tasks_app_job WHERE id::text = ANY(%s)", [list(job_ids)])
        return {job_id: int(attempt) for job_id, attempt in rows}


async def test_the_redis_primary_killed_mid_job(
    apps: AppCluster, redis_cluster: SentinelCluster, sessions: dict[str, HttpSession]
) -> None:
    on_a, on_b = await Viewer.open(sessions["a"]), await Viewer.open(sessions["b"])
    simulated = await on_a.start("simulated", {"step": 1, "interval_ms": 150})  # SIMULATED_S
    primes = await on_b.start("primes", {"limit": PRIMES_LIMIT})
    await subscribe(on_b, simulated)
    await subscribe(on_a, primes)
    for job in (simulated, primes):
        await on_a.until(progressing(job), 30)
    jobs = [simulated, primes]
    reconnects = {name: layer_reconnects(app_host) for name, app_host in apps.hosts.items()}
    killed = redis_cluster.kill_primary()
    killed_at = time.monotonic()
    (new_primary, failover_s), finals_a, finals_b = await asyncio.gather(
        asyncio.to_thread(redis_cluster.wait_for_failover, 30), finals_of(on_a, jobs), finals_of(on_b, jobs)
    )
    report(f"Sentinels promoted {new_primary[0]}:{new_primary[1]} after killing {killed.name}", failover_s)
    for job in jobs:
        kind = finals_a[job]["job"]["kind"]
        for name, viewer in (("a", on_a), ("b", on_b)):
            # Frames read just after the kill were on their way before it: count from the promotion.
            moved = failover_s + viewer.moved_after(job, killed_at + failover_s)
            report(f"primary killed: {kind} moving again on host {name}'s socket", moved)
            assert moved <= FAILOVER_BOUND_S
            viewer.assert_sane(job)
            final_s = viewer.of(job)[-1][0] - killed_at
            report(f"primary killed: {kind} final on host {name}'s socket", final_s)
            assert final_s <= SIMULATED_S + FAILOVER_BOUND_S
    for finals in (finals_a, finals_b):
        assert finals[simulated]["type"] == "job.succeeded"
        assert finals[primes]["job"]["result"] == {"limit": PRIMES_LIMIT, "primes": PRIMES_BELOW_LIMIT}
    assert apps.exited() == {}, "a process exited because the Redis primary died"
    # Operators see it: each web process counted its channel layer's reconnect.
    for name, app_host in apps.hosts.items():
        assert layer_reconnects(app_host) > reconnects[name], name


async def test_a_whole_host_killed_mid_job(apps: AppCluster, sessions: dict[str, HttpSession]) -> None:
    on_b = await Viewer.open(sessions["b"])
    # Four primes jobs for four work slots (two a host, prefetch 1): host a runs at least one.
    primes = [await on_b.start("primes", {"limit": PRIMES_LIMIT}) for _ in range(4)]
    simulated = await on_b.start("simulated", {"step": 2, "interval_ms": 200})  # 10 s
    for job in (*primes, simulated):
        await on_b.until(progressing(job), 30)
    running_on = worker_of(apps, set(primes))
    on_a = {job for job, node in running_on.items() if node == f"jobs@{apps['a'].hostname}"}
    assert on_a, f"no primes job runs on host a: {running_on}"
    assert set(attempts(apps, on_a).values()) == {1}
    apps["a"].host.kill_all()
    killed_at = time.monotonic()

    def rerun_after() -> float:
        """Seconds from the kill until every job of host a runs again (attempt 2) elsewhere."""
        wait_for(
            lambda: all(n >= 2 for n in attempts(apps, on_a).values()), HOST_LOSS_BOUND_S, 0.2, "a rerun on host b"
        )
        return time.monotonic() - killed_at

    rerun_s, finals = await asyncio.gather(asyncio.to_thread(rerun_after), finals_of(on_b, [*primes, simulated]))
    for job in (*primes, simulated):
        on_b.assert_sane(job)
    report(f"host a killed: its {len(on_a)} primes jobs all running again on host b", rerun_s)
    for job in on_a:
        report("host a killed: its primes job final", on_b.of(job)[-1][0] - killed_at)
    assert finals[simulated]["type"] == "job.succeeded"
    for job in primes:
        assert finals[job]["job"]["result"] == {"limit": PRIMES_LIMIT, "primes": PRIMES_BELOW_LIMIT}
    assert {name for name in apps.exited() if not name.startswith("a/")} == set(), apps.exited()


async def answers_to(viewer: Viewer, frames: list[dict[str, Any]], timeout: float = 30) -> list[Frame]:
    """Send every frame at once, then read until each has its answer; the answers in the
    frames' order."""
    rids = [await viewer.client.send(frame) for frame in frames]
    got: dict[str, Frame] = {}

    def all_answered(frame: Frame) -> bool:
        if frame.get("request_id") in rids:
            got[frame["request_id"]] = frame
        return len(got) == len(rids)

    await viewer.client.recv_until(all_answered, timeout)
    return [got[rid] for rid in rids]


async def test_the_active_job_limit_and_idempotency_keys_hold_across_hosts(
    apps: AppCluster, sessions: dict[str, HttpSession]
) -> None:
    on_a, on_b = await Viewer.open(sessions["a"]), await Viewer.open(sessions["b"])
    slow = {"type": "job.start", "kind": "simulated", "params": {"step": 1, "interval_ms": 2000}}
    # The same idempotency key from both hosts at once: one job.
    keyed = [{**slow, "idempotency_key": "multihost-once"} for _ in range(3)]
    once = await asyncio.gather(answers_to(on_a, keyed), answers_to(on_b, [dict(f) for f in keyed]))
    ids = {frame["job"]["id"] for frames in once for frame in frames}
    assert all(frame["type"] == "job.accepted" for frames in once for frame in frames), once
    assert len(ids) == 1, ids
    # Both hosts start jobs at once, past the limit: exactly ACTIVE_LIMIT are active.
    burst = 15
    answers = await asyncio.gather(
        answers_to(on_a, [dict(slow) for _ in range(burst)]), answers_to(on_b, [dict(slow) for _ in range(burst)])
    )
    flat = [frame for frames in answers for frame in frames]
    accepted = [frame["job"]["id"] for frame in flat if frame["type"] == "job.accepted"]
    refused = [frame for frame in flat if frame["type"] == "error"]
    assert {frame["code"] for frame in refused} <= {"rate_limited"}, refused
    assert len(accepted) + len(refused) == 2 * burst
    assert len(accepted) == ACTIVE_LIMIT - len(ids), (len(accepted), len(refused))
    listed = await on_b.send({"type": "job.list", "limit": 100})
    active = [job for job in listed["jobs"] if job["state"] not in FINAL]
    assert len(active) == ACTIVE_LIMIT, [job["state"] for job in active]
    # Cancel them all, from either host, so later tests start under the limit.
    for index, job_id in enumerate([*ids, *accepted]):
        answer = await (on_a if index % 2 else on_b).send({"type": "job.cancel", "job_id": job_id})
        assert answer["job"]["state"] in {"cancelling", "cancelled"}, answer

    async def none_active() -> bool:
        listed = await on_a.send({"type": "job.list", "limit": 100})
        return all(job["state"] in FINAL for job in listed["jobs"])

    await wait_for_async(none_active, 30, 0.5, desc="every job of the burst cancelled")
