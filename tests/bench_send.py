"""``send_job_event`` from one process (``make bench`` runs it): calls per second and CPU per
call, beside redis-py ``PUBLISH`` of the same payload to one subscriber, in the same run.

``python -m tests.bench_send REDIS_URL [--quick]``: one channel is in the job's group, as a
worker sends progress (``messaging.use_worker_loop``); every ``BATCH`` calls the channel is
read empty (untimed), so no message meets the layer's capacity.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid

CALLS = 3000
#: Calls between two reads of the channel (below the layer's capacity of 200).
BATCH = 100
QUICK_CALLS = 100


def main(redis_url: str, calls: int) -> None:
    os.environ.update(
        {"DJANGO_SETTINGS_MODULE": "proj.settings", "DJANGO_DEBUG": "1", "DJANGO_ENV_FILE": "", "REDIS_URL": redis_url}
    )
    import django

    django.setup()
    import redis
    from channels.layers import get_channel_layer

    from realtime import messaging

    messaging.use_worker_loop()
    layer = get_channel_layer()
    assert layer is not None
    job_id = str(uuid.uuid4())
    job = {"id": job_id, "kind": "simulated", "state": "running", "seq": 2, "progress": {"current": 1, "total": 100}}

    async def join() -> str:
        channel = await layer.new_channel()
        await layer.group_add(messaging.job_group(job_id), channel)
        return channel

    async def drain(count: int) -> None:
        for _ in range(count):
            await layer.receive(channel)

    channel = messaging._get_worker_loop().run(join(), 10)
    wall = cpu = 0.0
    for first in range(0, calls, BATCH):
        batch = range(first, min(calls, first + BATCH))
        started, used = time.perf_counter(), time.process_time()
        for n in batch:
            job["seq"] = n
            messaging.send_job_event(job)
        wall, cpu = wall + time.perf_counter() - started, cpu + time.process_time() - used
        messaging._get_worker_loop().run(drain(len(batch)), 30)
    print(f"  send_job_event: {calls / wall:,.0f} calls/s, {1000 * cpu / calls:.3f} ms CPU a call ({calls} calls)")

    client = redis.Redis.from_url(redis_url)
    subscriber = client.pubsub()
    subscriber.subscribe("bench-send")
    payload = json.dumps(messaging.job_event(job))
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        client.publish("bench-send", payload)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"  redis-py PUBLISH, same payload: {calls / wall:,.0f} calls/s, {1000 * cpu / calls:.3f} ms CPU a call")
    subscriber.close()
    client.close()
    messaging._get_worker_loop().run(layer.group_discard(messaging.job_group(job_id), channel), 10)
    asyncio.run(asyncio.sleep(0))


if __name__ == "__main__":
    main(sys.argv[1], QUICK_CALLS if "--quick" in sys.argv[2:] else CALLS)
