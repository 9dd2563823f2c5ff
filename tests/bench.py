"""Benchmark (``make bench``): the real stack, measured end to end; prints figures and conditions.

Figures:
- one simulated job (step 3, 200 ms): wall time from job.start to the final frame, frames;
- N simulated jobs at once on N sockets: wall time, frames, how late the final frames were
  against the ideal 6.8 s;
- csv_profile throughput on real public CSV data (vega_datasets' airports.csv, and the same
  rows repeated to ~10 MB): seconds and MB/s end to end;
- Redis connections opened per frame pushed (the hot path reuses one pool per process);
- resident memory of every process of the stack after the run.
Nothing here asserts a time: tests assert behaviour, this prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import statistics
import sys
import time

import psutil
import redis

from proj.localredis import ensure_redis
from tests.integration.stack import DEMO_PASSWORD, HttpSession, Stack, build_stack
from tests.integration.wsclient import JobsClient
from tests.realdata import AIRPORTS

CONCURRENT_JOBS = int(os.environ.get("BENCH_CONCURRENT_JOBS", "20"))
IDEAL_SIMULATED_S = 34 * 0.2


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


async def csv_profile(session: HttpSession, name: str, content: bytes) -> tuple[float, int]:
    status, upload = session.upload(name, content)
    assert status == 201, upload
    client = await JobsClient.open(session)
    started = time.monotonic()
    accepted = await client.answer(
        {"type": "job.start", "kind": "csv_profile", "params": {"upload_id": upload["upload_id"]}}
    )
    frames = await client.until_final(accepted["job"]["id"], timeout=600)
    elapsed = time.monotonic() - started
    await client.close()
    assert frames[-1]["type"] == "job.succeeded", frames[-1]
    return elapsed, frames[-1]["job"]["result"]["rows"]


async def main(stack: Stack) -> None:
    session = HttpSession(stack).login("demo", DEMO_PASSWORD)
    counter = redis.Redis.from_url(stack.redis_url)
    print("conditions:")
    print(f"  machine: {os.cpu_count()} cores, {platform.platform()}, Python {sys.version.split()[0]}")
    print(
        "  stack: daphne + worker-jobs (prefork 2) + worker-progress (prefork 2) + flower, SQLite, "
        f"Redis {counter.info('server')['redis_version']} on loopback, PROGRESS_POLL_INTERVAL_MS=200"
    )

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

    content = AIRPORTS.read_bytes()
    elapsed, rows = await csv_profile(session, "airports.csv", content)
    print(f"csv_profile airports.csv ({len(content):,} bytes, {rows:,} rows): {elapsed:.2f} s end to end")
    header, _, body = content.partition(b"\n")
    repeats = max(1, (10 * 1024 * 1024) // len(body))
    big = header + b"\n" + body * repeats
    elapsed, rows = await csv_profile(session, "airports-x50.csv", big)
    size_mb = len(big) / 1e6
    print(
        f"csv_profile airports.csv rows x{repeats} ({size_mb:.1f} MB, {rows:,} rows): "
        f"{elapsed:.2f} s end to end, {size_mb / elapsed:.1f} MB/s"
    )

    print("resident memory after the run (process and its children):")
    for name, proc in stack.processes.items():
        print(f"  {name}: {rss_mib(proc.pid):.0f} MiB")


def run() -> None:
    redis_handle = ensure_redis(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    stack = build_stack(redis_handle.url, {"UPLOAD_MAX_BYTES": str(64 * 1024 * 1024)})
    try:
        asyncio.run(main(stack))
    finally:
        stack.stop()
        redis_handle.stop()


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj.settings")
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-secret-key")
    run()
