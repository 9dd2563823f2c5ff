"""The channel layer against a real Redis (the test database of REDIS_URL): lost data is
noticed and every local receiver hears it once, then messages flow again."""

from __future__ import annotations

import asyncio
import os

import pytest
import redis.asyncio as aredis
from channels_redis.core import RedisChannelLayer
from redis.asyncio import BlockingConnectionPool
from redis.exceptions import MaxConnectionsError

from realtime.layers import EVENT_RECONNECTED, ResilientRedisChannelLayer
from tests.waiting import wait_for_async


async def test_a_flushed_redis_is_noticed_and_each_receiver_hears_it_once() -> None:
    layer = ResilientRedisChannelLayer(hosts=[os.environ["REDIS_URL"]], prefix="test-layer")
    client = aredis.Redis.from_url(os.environ["REDIS_URL"])
    try:
        first, second = await layer.new_channel(), await layer.new_channel()
        receiving = [asyncio.ensure_future(layer.receive(first)), asyncio.ensure_future(layer.receive(second))]

        async def marker_set() -> int:
            return int(await client.exists(layer._marker))

        await wait_for_async(marker_set, 5, desc="the layer's marker key")
        await client.flushdb()  # what a Redis restart without persistence leaves
        heard = await asyncio.wait_for(asyncio.gather(*receiving), 10)
        assert heard == [{"type": EVENT_RECONNECTED}, {"type": EVENT_RECONNECTED}]
        assert layer.outages == 1
        await layer.send(first, {"type": "after.loss"})
        assert await asyncio.wait_for(layer.receive(first), 5) == {"type": "after.loss"}  # once only
    finally:
        await layer.flush()
        await client.aclose()


async def test_more_concurrent_commands_than_connections_wait_for_one_instead_of_failing() -> None:
    # 180 viewers subscribing at once got "internal": the stock pool raises MaxConnectionsError.
    url = os.environ["REDIS_URL"]
    stock = RedisChannelLayer(hosts=[{"address": url, "max_connections": 2}], prefix="test-stock")
    layer = ResilientRedisChannelLayer(hosts=[{"address": url, "max_connections": 2}], prefix="test-pool")
    try:
        with pytest.raises(MaxConnectionsError):
            await asyncio.gather(*(stock.group_add("g", f"c{n}") for n in range(40)))
        await asyncio.gather(*(layer.group_add("g", f"c{n}") for n in range(40)))
        client = aredis.Redis.from_url(url)
        try:
            assert await client.zcard("test-pool:group:g") == 40
        finally:
            await client.aclose()
        pool = layer.connection(0).connection_pool
        assert isinstance(pool, BlockingConnectionPool)
        assert pool.max_connections == 2
    finally:
        await stock.flush()
        await layer.flush()


def test_the_layers_connections_outlast_the_5_s_blocking_read() -> None:
    layer = ResilientRedisChannelLayer(hosts=["redis://127.0.0.1:6379/0"])
    (host,) = layer.hosts
    assert host["socket_timeout"] > layer.brpop_timeout
    assert host["retry_on_error"]
