"""The fan-out yardstick of ``make bench``: Redis ``PUBLISH`` to a plain ``websockets`` broadcast
server (no Django, no Channels, no authentication), run as its own process.

``python -m tests.bench_plain PORT REDIS_URL CHANNEL``: every message published on ``CHANNEL``
goes to every connected client (``websockets.broadcast``, which drops a frame for a client
whose buffer is full rather than wait).
"""

from __future__ import annotations

import asyncio
import sys

import redis.asyncio as aredis
from websockets.asyncio.server import ServerConnection, broadcast, serve


async def main(port: int, redis_url: str, channel: str) -> None:
    clients: set[ServerConnection] = set()

    async def handler(connection: ServerConnection) -> None:
        clients.add(connection)
        try:
            await connection.wait_closed()
        finally:
            clients.discard(connection)

    client = aredis.Redis.from_url(redis_url)
    pubsub = client.pubsub()
    await pubsub.subscribe(channel)
    async with serve(handler, "127.0.0.1", port):
        print("ready", flush=True)
        async for message in pubsub.listen():
            if message["type"] == "message":
                broadcast(clients, message["data"].decode())


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3]))
