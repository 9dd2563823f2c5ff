"""Benchmark against the peer (``make bench-peer``): the same jobs watched through the project
and through celery-progress in one run, one after the other on the same machine.

- The project: ``BENCH_PEER_JOBS`` simulated jobs (100 steps of 200 ms: 5 updates a second)
  watched by ``BENCH_PEER_VIEWERS`` WebSockets in all (the same number on each job) through
  the real stack (``tests.integration.stack``) on a private ``redis-server``.
- celery-progress 0.5 (``tests/peer``) in its own venv (``.bench/peer-venv``, built once from
  PyPI with Django, Celery, redis-py and daphne at ``requirements/base.txt``'s pins): the same
  jobs as a ``ProgressRecorder`` task, its results in Redis (its own private server), the same
  viewers each polling ``/celery-progress/<task_id>/`` every 500 ms after the previous answer,
  as its ``celery_progress.js`` does; served by gunicorn (sync workers, ``2 * cores + 1``, no
  keep-alive) and by daphne (Django's ASGI handler: the view in its one sync thread).

Figures per side: updates delivered (distinct progress values each viewer saw, summed) of the
ideal; staleness p50/p99 (when a viewer first saw a step minus when that step happened: the
job's start plus steps times the interval, one clock); when every step was first shown, by it
or by a later one (what polling costs); CPU seconds (psutil, with children) of every server
process per 1,000 updates and of all of them, within the jobs' run only; the client's own CPU.
Nothing here asserts a figure. ``BENCH_QUICK=1`` is a small form (2 jobs of 10 steps, 4 viewers)
that ``tests/bench.py`` runs as its last section.

(Over ~350 lines: one benchmark run end to end: the peer's venv, both stacks, the same jobs
through each, the figures side by side.)
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fcntl
import os
import platform
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import redis
from celery import Celery

from proj.localredis import RedisHandle, free_port, start_embedded, with_db
from tests.bench_common import (
    JOBS_PER_USER,
    cpu_s,
    job_frames,
    job_sessions,
    open_in_batches,
    percentile,
    run_on_private_stack,
)
from tests.integration.stack import ROOT, Stack, procfile_commands
from tests.integration.wsclient import JobsClient
from tests.processes import http_status
from tests.waiting import wait_for

QUICK = os.environ.get("BENCH_QUICK", "") == "1"
JOBS = int(os.environ.get("BENCH_PEER_JOBS", "2" if QUICK else "20"))
VIEWERS = max(JOBS, int(os.environ.get("BENCH_PEER_VIEWERS", "4" if QUICK else "200")))
STEPS = 10 if QUICK else 100
INTERVAL_MS = 200
#: celery_progress.js: ``this.pollInterval = options.pollInterval || 500``, waited after each answer.
POLL_S = 0.5
GUNICORN_WORKERS = 2 * (os.cpu_count() or 1) + 1
READY_TIMEOUT_S = 60.0

PEER_VENV = ROOT / ".bench" / "peer-venv"
#: The peer's own pins; the rest come from requirements/base.txt so both sides run one version.
PEER_OWN = ("celery-progress==0.5", "gunicorn==27.0.1")
PEER_FROM_BASE = ("django", "asgiref", "celery", "kombu", "redis", "daphne", "twisted")
PEER_TASK = "tests.peer.tasks.simulated"


def peer_requirements() -> list[str]:
    """The peer venv's requirement lines: ``PEER_OWN`` and base.txt's pins of ``PEER_FROM_BASE``."""
    pins = {}
    for line in (ROOT / "requirements" / "base.txt").read_text().splitlines():
        spec = line.split("#", 1)[0].strip()
        name = re.split(r"[\[=<>~! ]", spec, maxsplit=1)[0].lower()
        if "==" in spec and name in PEER_FROM_BASE:
            pins[name] = spec
    missing = sorted(set(PEER_FROM_BASE) - pins.keys())
    if missing:
        raise RuntimeError(f"requirements/base.txt pins none of {missing}")
    return [*PEER_OWN, *(pins[name] for name in PEER_FROM_BASE)]


def ensure_peer_venv() -> Path:
    """The peer venv's ``bin``, built when missing or when its requirements changed (a stamp
    holds the lines it was built from). Raises ``RuntimeError`` with pip's output on failure."""
    requirements = peer_requirements()
    stamp = PEER_VENV / ".requirements"
    wanted = "\n".join(requirements) + "\n"
    python = PEER_VENV / "bin" / "python"
    PEER_VENV.parent.mkdir(exist_ok=True)
    # Two benchmarks started at once (make bench-peer beside make test) build it once.
    with open(PEER_VENV.parent / "peer-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (python.exists() and stamp.exists() and stamp.read_text() == wanted):
            _build_peer_venv(python, requirements)
            stamp.write_text(wanted)
    return python.parent


def _build_peer_venv(python: Path, requirements: list[str]) -> None:
    shutil.rmtree(PEER_VENV, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(PEER_VENV)], check=True)
    # This venv's pip installs into the other: no ensurepip, a few seconds less.
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--disable-pip-version-check"]
    result = subprocess.run([*pip, *requirements], capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"pip could not build {PEER_VENV}:\n{result.stdout}\n{result.stderr[-3000:]}")


@dataclass
class Seen:
    """What one viewer saw of its job: when it first saw each step, and how it got there."""

    first_seen: dict[int, float] = field(default_factory=dict)
    started_at: float | None = None
    requests: int = 0
    errors: int = 0
    done: bool = False

    def see(self, step: int, now: float) -> None:
        if step > 0:
            self.first_seen.setdefault(step, now)


@dataclass
class Side:
    """One row: a server, its processes' pids by name, and what its viewers saw."""

    name: str
    pids: dict[str, int]
    seen: list[Seen] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    client_cpu: float = 0.0
    wall: float = 0.0


def happened(started_at: float, step: int) -> float:
    return started_at + step * INTERVAL_MS / 1000


def staleness(seen: list[Seen]) -> list[float]:
    """Every step a viewer saw: when it first saw it minus when it happened."""
    return [
        at - happened(s.started_at, step) for s in seen if s.started_at is not None for step, at in s.first_seen.items()
    ]


def shown_after(seen: list[Seen]) -> list[float]:
    """Every step of every viewer: when it was first shown, by it or a later step, minus when it
    happened; a step never shown is not counted (the unfinished column says so)."""
    lags = []
    for s in seen:
        if s.started_at is None:
            continue
        earliest = float("inf")
        for step in range(STEPS, 0, -1):
            earliest = min(earliest, s.first_seen.get(step, float("inf")))
            if earliest != float("inf"):
                lags.append(earliest - happened(s.started_at, step))
    return lags


@contextlib.contextmanager
def cpu_window(side: Side) -> Iterator[None]:
    """Fill ``side.cpu`` (per process) and ``side.client_cpu`` with the CPU seconds spent inside."""
    me = psutil.Process()
    before = {name: cpu_s(pid) for name, pid in side.pids.items()}
    client_before = sum(me.cpu_times()[:2])
    started = time.monotonic()
    yield
    side.wall = time.monotonic() - started
    side.client_cpu = sum(me.cpu_times()[:2]) - client_before
    side.cpu = {name: cpu_s(pid) - before[name] for name, pid in side.pids.items()}


def job_timeout_s() -> float:
    return STEPS * INTERVAL_MS / 1000 * 3 + 30


async def watch_project(viewer: JobsClient, job_id: str, seen: Seen, subscribe: bool) -> None:
    """Frames of ``job_id`` on ``viewer`` (subscribing first unless it started the job) until the
    final one."""
    if subscribe:
        await viewer.send({"type": "job.subscribe", "job_id": job_id})
    step_size = 100 // STEPS
    async for job, now in job_frames(viewer, job_id, job_timeout_s()):
        seen.requests += 1
        if job.get("started_at") and seen.started_at is None:
            seen.started_at = dt.datetime.fromisoformat(job["started_at"]).timestamp()
        seen.see(int((job.get("progress") or {}).get("current") or 0) // step_size, now)
    seen.done = True


async def run_project(stack: Stack, redis_pid: int) -> Side:
    """The project's row: ``JOBS`` jobs, ``VIEWERS`` sockets (viewer ``i`` on job ``i % JOBS``,
    opened by the job's owner, before the window: a page is loaded before it watches)."""
    pids = {name: proc.pid for name, proc in stack.processes.items()}
    side = Side("project, WebSockets", {**pids, "redis": redis_pid})
    sessions = job_sessions(stack, JOBS)
    owners = iter([sessions[(i % JOBS) // JOBS_PER_USER] for i in range(VIEWERS)])
    viewers = await open_in_batches(lambda: JobsClient.open(next(owners)), VIEWERS)
    side.seen = [Seen() for _ in viewers]
    params = {"step": 100 // STEPS, "interval_ms": INTERVAL_MS}
    try:
        warm_up = await viewers[0].answer({"type": "job.start", "kind": "simulated", "params": {"step": 50}})
        await viewers[0].until_final(warm_up["job"]["id"])
        with cpu_window(side):
            accepted = await asyncio.gather(
                *(viewers[j].answer({"type": "job.start", "kind": "simulated", "params": params}) for j in range(JOBS))
            )
            job_ids = [a["job"]["id"] for a in accepted]
            ended = await asyncio.gather(
                *(watch_project(v, job_ids[i % JOBS], side.seen[i], i >= JOBS) for i, v in enumerate(viewers)),
                return_exceptions=True,
            )
        failures = [e for e in ended if isinstance(e, BaseException)]
        if failures:
            print(f"    {len(failures)} project viewers ended early, the first: {failures[0]!r}")
    finally:
        await asyncio.gather(*(v.close() for v in viewers))
    return side


async def poll_peer(client: httpx.AsyncClient, url: str, seen: Seen) -> None:
    """celery_progress.js's loop: GET ``url``, wait ``POLL_S``, again, until ``complete``."""
    deadline = time.monotonic() + job_timeout_s()
    while not seen.done and time.monotonic() < deadline:
        seen.requests += 1
        try:
            response = await client.get(url)
            response.raise_for_status()
            answer = response.json()
        except (httpx.HTTPError, ValueError):
            seen.errors += 1
        else:
            now = time.time()
            progress = answer["progress"]
            if answer["state"] == "PROGRESS":
                seen.started_at = seen.started_at or float(progress["description"])
                seen.see(int(progress["current"]), now)
            elif answer["state"] == "SUCCESS":
                seen.see(STEPS, now)
            seen.done = bool(answer["complete"])
        if not seen.done:
            await asyncio.sleep(POLL_S)


#: The peer's servers: gunicorn's default sync workers, ``2 * cores + 1`` (its docs' advice);
#: daphne as a Channels project would add celery-progress to it.
PEER_SERVERS = {
    "gunicorn": (
        "gunicorn --workers {workers} --bind 127.0.0.1:{port} --log-level info"
        # Its control socket is one path in $HOME for every gunicorn of the user.
        " --no-control-socket tests.peer.wsgi:application"
    ),
    "daphne": "daphne -b 127.0.0.1 -p {port} -v 0 tests.peer.asgi:application",
}
PEER_WORKER = "celery -A tests.peer worker --pool threads --concurrency {jobs} --loglevel WARNING"


@contextlib.contextmanager
def peer_stack(bin_dir: Path) -> Iterator[tuple[Stack, RedisHandle]]:
    """The peer's Celery worker and its own ``redis-server`` running; stopped on exit."""
    redis_handle = start_embedded()
    workdir = Path(tempfile.mkdtemp(prefix="peer-stack-"))
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": os.environ.get("HOME", str(workdir)),
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "DJANGO_SETTINGS_MODULE": "tests.peer.settings",
        "PEER_BROKER_URL": with_db(redis_handle.url, 0),
        "PEER_RESULT_BACKEND": with_db(redis_handle.url, 1),
        "PEER_WORKDIR": str(workdir),
    }
    peer = Stack(workdir=workdir, env=env, port=0, flower_port=0, redis_url=env["PEER_BROKER_URL"])
    try:
        peer.launch("worker", PEER_WORKER.format(jobs=JOBS))
        yield peer, redis_handle
    finally:
        peer.stop()
        redis_handle.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _answers(peer: Stack, server: str, url: str) -> bool:
    """True once ``url`` answers 200; raises ``RuntimeError`` when the server or the worker exited."""
    for name in (server, "worker"):
        code = peer.processes[name].poll()
        if code is not None:
            raise RuntimeError(f"the peer's {name} exited with {code}:\n{peer.log_tail(name)}")
    return http_status(url) == 200


async def run_peer(peer: Stack, redis_pid: int, server: str, sender: Celery) -> Side:
    """celery-progress's row on ``server``: ``JOBS`` tasks, ``VIEWERS`` pollers."""
    port = free_port()
    base = f"http://127.0.0.1:{port}/celery-progress/"
    peer.launch(server, PEER_SERVERS[server].format(workers=GUNICORN_WORKERS, port=port))
    try:
        wait_for(lambda: _answers(peer, server, base + "ready/"), READY_TIMEOUT_S, desc=f"the peer's {server}")
        pids = {server: peer.processes[server].pid, "worker": peer.processes["worker"].pid, "redis": redis_pid}
        side = Side(f"celery-progress, {server}", pids, seen=[Seen() for _ in range(VIEWERS)])
        # A client each, as each viewer is a browser of its own: one shared pool of 200
        # connections costs httpcore O(connections) a request (_assign_requests_to_connections)
        # and made the client, not the server, the bottleneck. One TLS context for them all.
        tls = ssl.create_default_context()
        async with contextlib.AsyncExitStack() as clients:
            viewers = [await clients.enter_async_context(httpx.AsyncClient(verify=tls, timeout=30)) for _ in side.seen]
            warm_up = Seen()
            await poll_peer(viewers[0], base + sender.send_task(PEER_TASK, args=[2, 0.05]).id + "/", warm_up)
            if not warm_up.done:
                raise RuntimeError(f"the peer's warm-up task did not finish:\n{peer.log_tail('worker')}")
            await asyncio.gather(*(v.get(base + "warm-up/") for v in viewers))
            with cpu_window(side):
                ids = [sender.send_task(PEER_TASK, args=[STEPS, INTERVAL_MS / 1000]).id for _ in range(JOBS)]
                await asyncio.gather(
                    *(poll_peer(v, f"{base}{ids[i % JOBS]}/", side.seen[i]) for i, v in enumerate(viewers))
                )
    finally:
        peer.kill(server, signal.SIGTERM)
    return side


def peer_versions(bin_dir: Path) -> str:
    """``name version`` of the peer venv's main packages."""
    names = ["celery-progress", "Django", "celery", "redis", "gunicorn", "daphne"]
    code = f"import importlib.metadata as m; print(', '.join(n + ' ' + m.version(n) for n in {names!r}))"
    return subprocess.run(
        [str(bin_dir / "python"), "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


def print_table(sides: list[Side]) -> None:
    """The table, the CPU by process and the goal's ratio; the project's side comes first."""
    ideal = VIEWERS * STEPS
    print(
        "  side                      | updates of ideal | staleness s p50 p99 | every step shown after s p50 p99"
        " | unfinished | frames or answers/s | errors | all processes CPU s | per 1,000 updates | client CPU s"
    )
    per_k: dict[str, float] = {}
    for side in sides:
        updates = sum(len(s.first_seen) for s in side.seen)
        stale, shown = staleness(side.seen), shown_after(side.seen)
        total = sum(side.cpu.values())
        per_k[side.name] = 1000 * total / max(1, updates)
        unfinished = sum(not s.done for s in side.seen)
        rate = sum(s.requests for s in side.seen) / side.wall
        errors = sum(s.errors for s in side.seen)
        print(
            f"  {side.name:<25} | {updates:>6} of {ideal:>6}"
            f" | {percentile(stale, 50):6.3f} {percentile(stale, 99):6.3f}"
            f" | {percentile(shown, 50):6.3f} {percentile(shown, 99):6.3f} | {unfinished:>4} | {rate:7.0f}"
            f" | {errors:>5} | {total:6.2f} | {per_k[side.name]:6.2f} | {side.client_cpu:6.2f}"
        )
    print("  CPU s per 1,000 updates by process (with children), within the jobs' run:")
    for side in sides:
        updates = max(1, sum(len(s.first_seen) for s in side.seen))
        print(f"    {side.name}: " + ", ".join(f"{n} {1000 * c / updates:.2f}" for n, c in side.cpu.items()))
    project, *peers = per_k
    best = min(peers, key=per_k.__getitem__)
    print(
        f"  project's all-process CPU per 1,000 updates over celery-progress's best ({best}):"
        f" {per_k[project] / max(per_k[best], 1e-9):.2f} (goal: at most 0.5)"
    )


async def main(stack: Stack, redis_pid: int) -> None:
    """The peer comparison on a running ``stack`` whose Redis is process ``redis_pid``."""
    started = time.monotonic()
    bin_dir = ensure_peer_venv()
    venv_s = time.monotonic() - started
    print(
        f"peer: {JOBS} jobs of {STEPS} steps of {INTERVAL_MS} ms, {VIEWERS} viewers ({VIEWERS // JOBS} a job),"
        " one side after the other; the client runs on the same machine"
    )
    print(f"  machine: {os.cpu_count()} cores, {platform.platform()}, Python {sys.version.split()[0]}")
    print(f"  project: WebSockets; web: {procfile_commands()['web']}")
    print(f"    worker-progress: {procfile_commands()['worker-progress']}; PROGRESS_POLL_INTERVAL_MS=200")
    print(f"  celery-progress: {peer_versions(bin_dir)} (venv ready in {venv_s:.1f} s)")
    print(f"    polled every {POLL_S * 1000:.0f} ms after each answer; worker: {PEER_WORKER.format(jobs=JOBS)}")
    print(f"    gunicorn: {GUNICORN_WORKERS} sync workers (no keep-alive); daphne: one process, Django's ASGI handler")
    with redis.Redis.from_url(stack.redis_url) as client:
        server_version = client.info("server")["redis_version"]
    print(f"    its results and broker on a redis-server of its own: the project's binary, {server_version}, loopback")
    project = await run_project(stack, redis_pid)
    with peer_stack(bin_dir) as (peer, peer_redis):
        assert peer_redis.process is not None
        sender = Celery(broker=peer.redis_url)
        try:
            sides = [project]
            for server in PEER_SERVERS:
                sides.append(await run_peer(peer, peer_redis.process.pid, server, sender))
        finally:
            sender.close()
    print_table(sides)


if __name__ == "__main__":
    run_on_private_stack(main)
