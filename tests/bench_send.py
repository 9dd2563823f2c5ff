"""``send_job_event`` from one process (``make bench`` runs it): calls per second and CPU per
call, beside redis-py ``PUBLISH`` of the same payload to one subscriber, in the same run.

``python -m tests.bench_send REDIS_URL [--quick]``: one channel is in the job's group, held by a
subscriber process of its own (as a web process would be), and every ``BATCH`` calls the
bench waits (untimed) until it has read them all, so no message meets the layer's capacity.
Then one call of ``send_job_events`` with a tick's batch of ``BATCH`` jobs.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import sys
import time
import uuid
from functools import partial
from typing import Any

CALLS = 3000
#: Calls between two reads of the channel (below the layer's capacity of 200).
BATCH = 100
QUICK_CALLS = 100


def subscriber(redis_url: str, group: str, ready: Any, received: Any, stop: Any) -> None:
    """A process that joins ``group`` on the project's channel layer and counts what it reads."""
    _django(redis_url)
    from channels.layers import get_channel_layer

    async def run() -> None:
        layer = get_channel_layer()
        assert layer is not None
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
        ready.set()
        while not stop.is_set():
            try:
                await asyncio.wait_for(layer.receive(channel), 0.5)
            except TimeoutError:
                continue
            with received.get_lock():
                received.value += 1

    asyncio.run(run())


def _read_at_least(received: Any, count: int) -> bool:
    return bool(received.value >= count)


def _django(redis_url: str) -> None:
    os.environ.update(
        {"DJANGO_SETTINGS_MODULE": "proj.settings", "DJANGO_DEBUG": "1", "DJANGO_ENV_FILE": "", "REDIS_URL": redis_url}
    )
    import django

    django.setup()


def main(redis_url: str, calls: int) -> None:
    _django(redis_url)
    import redis

    from realtime import messaging
    from tests.waiting import wait_for

    job_id = str(uuid.uuid4())
    job = {"id": job_id, "kind": "simulated", "state": "running", "seq": 2, "progress": {"current": 1, "total": 100}}
    context = multiprocessing.get_context("spawn")
    ready, stop, received = context.Event(), context.Event(), context.Value("q", 0)
    reader = context.Process(target=subscriber, args=(redis_url, messaging.job_group(job_id), ready, received, stop))
    reader.start()
    assert ready.wait(30), "the subscriber process did not join the group"
    wall = cpu = 0.0
    for first in range(0, calls, BATCH):
        batch = range(first, min(calls, first + BATCH))
        started, used = time.perf_counter(), time.process_time()
        for n in batch:
            job["seq"] = n
            messaging.send_job_event(job)
        wall, cpu = wall + time.perf_counter() - started, cpu + time.process_time() - used
        wait_for(partial(_read_at_least, received, batch.stop), 30, 0.002, "the subscriber to read the batch")
    print(f"  send_job_event: {calls / wall:,.0f} calls/s, {1000 * cpu / calls:.3f} ms CPU a call ({calls} calls)")

    tick = [{**job, "id": str(uuid.uuid4())} for _ in range(BATCH)]
    started, used = time.perf_counter(), time.process_time()
    rounds = max(1, calls // BATCH)
    for _ in range(rounds):
        messaging.send_job_events(tick)
    wall, cpu = time.perf_counter() - started, time.process_time() - used
    print(
        f"  send_job_events, a tick's batch of {BATCH}: {rounds * BATCH / wall:,.0f} events/s, "
        f"{1000 * cpu / (rounds * BATCH):.3f} ms CPU an event"
    )
    stop.set()
    reader.join(10)

    client = redis.Redis.from_url(redis_url)
    listener = client.pubsub()
    listener.subscribe("bench-send")
    payload = json.dumps(messaging.job_event(job))
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        client.publish("bench-send", payload)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"  redis-py PUBLISH, same payload: {calls / wall:,.0f} calls/s, {1000 * cpu / calls:.3f} ms CPU a call")
    listener.close()
    client.close()


if __name__ == "__main__":
    main(sys.argv[1], QUICK_CALLS if "--quick" in sys.argv[2:] else CALLS)
