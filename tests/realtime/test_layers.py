"""The channel layer against a real Redis: a private ``redis-server`` for the restart and the
command counts, the test database of REDIS_URL otherwise."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aredis
from redis.asyncio import BlockingConnectionPool

from proj.localredis import RedisHandle, start_embedded
from realtime.layers import EVENT_RECONNECTED, REDIS_ERRORS, ResilientPubSubChannelLayer
from tests.waiting import wait_for_async


@pytest.fixture
async def private_redis() -> AsyncIterator[RedisHandle]:
    handle = start_embedded()
    yield handle
    handle.stop()


def port_of(handle: RedisHandle) -> int:
    return int(handle.url.rsplit(":", 1)[1].split("/")[0])


async def command_calls(url: str, command: str) -> int:
    client = aredis.Redis.from_url(url)
    try:
        stats = await client.info("commandstats")
        return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))
    finally:
        await client.aclose()


async def test_a_redis_restart_is_survived_and_each_receiver_hears_it_once(private_redis: RedisHandle) -> None:
    layer = ResilientPubSubChannelLayer(hosts=[private_redis.url], prefix="test-layer")
    handle = private_redis
    try:
        first, second = await layer.new_channel(), await layer.new_channel()
        await layer.group_add("g", first)
        receiving = [asyncio.ensure_future(layer.receive(first)), asyncio.ensure_future(layer.receive(second))]
        handle.stop()  # Redis restarts empty: no persistence
        handle = start_embedded(port=port_of(private_redis))
        assert port_of(handle) == port_of(private_redis), "the port was taken meanwhile"
        heard = await asyncio.wait_for(asyncio.gather(*receiving), 20)
        assert heard == [{"type": EVENT_RECONNECTED}, {"type": EVENT_RECONNECTED}]
        assert layer.outages == 1
        # The subscriptions came back with the connection: the group still reaches its member.
        await layer.group_send("g", {"type": "after.restart"})
        assert await asyncio.wait_for(layer.receive(first), 5) == {"type": "after.restart"}  # once only
    finally:
        await layer.flush()
        handle.stop()


async def test_a_joined_channel_gets_every_event_published_after_group_add_returns() -> None:
    layer = ResilientPubSubChannelLayer(hosts=[os.environ["REDIS_URL"]], prefix="test-confirm")
    publisher = ResilientPubSubChannelLayer(hosts=[os.environ["REDIS_URL"]], prefix="test-confirm")
    try:
        channel = await layer.new_channel()
        for n in range(50):  # a new group each time: each group_add is a new SUBSCRIBE
            await layer.group_add(f"g{n}", channel)
            await publisher.group_send(f"g{n}", {"type": "event", "n": n})
        got = [(await asyncio.wait_for(layer.receive(channel), 5))["n"] for _ in range(50)]
        assert got == list(range(50))
    finally:
        await layer.flush()
        await publisher.flush()


async def test_one_event_to_a_group_of_100_local_channels_is_one_publish(private_redis: RedisHandle) -> None:
    layer = ResilientPubSubChannelLayer(hosts=[private_redis.url], prefix="test-fanout")
    try:
        channels = [await layer.new_channel() for _ in range(100)]
        for channel in channels:
            await layer.group_add("job", channel)
        before = await command_calls(private_redis.url, "publish")
        await layer.group_send("job", {"type": "job.event", "seq": 7})
        got = await asyncio.wait_for(asyncio.gather(*(layer.receive(c) for c in channels)), 5)
        assert got == [{"type": "job.event", "seq": 7}] * 100
        assert await command_calls(private_redis.url, "publish") - before == 1
    finally:
        await layer.flush()


async def test_a_full_channel_drops_further_events_and_counts_them() -> None:
    layer = ResilientPubSubChannelLayer(hosts=[os.environ["REDIS_URL"]], prefix="test-capacity", capacity=3)
    try:
        channel = await layer.new_channel()
        await layer.group_add("g", channel)
        for n in range(5):
            await layer.group_send("g", {"type": "event", "n": n})

        async def two_dropped() -> bool:
            return bool(layer.dropped >= 2)

        await wait_for_async(two_dropped, 5, desc="two events dropped")
        assert layer.dropped == 2
        got = [(await asyncio.wait_for(layer.receive(channel), 5))["n"] for _ in range(3)]
        assert got == [0, 1, 2]
    finally:
        await layer.flush()


async def test_publishing_uses_a_pool_that_waits_for_a_free_connection() -> None:
    url = os.environ["REDIS_URL"]
    layer = ResilientPubSubChannelLayer(hosts=[{"address": url, "max_connections": 2}], prefix="test-pool")
    try:
        await asyncio.gather(*(layer.group_send(f"g{n}", {"type": "event"}) for n in range(40)))
        (shard,) = layer._get_layer()._shards
        pool = shard._redis.connection_pool
        assert isinstance(pool, BlockingConnectionPool)
        assert pool.max_connections == 2
        assert pool.connection_kwargs["socket_timeout"] > 0
        assert pool.connection_kwargs["retry_on_error"]
    finally:
        await layer.flush()


async def test_a_blocking_send_publishes_what_group_send_does_and_a_batch_goes_on_one_connection(
    private_redis: RedisHandle,
) -> None:
    """``group_send_blocking`` from synchronous code (a worker): same wire format as
    ``group_send`` (a member channel of the async layer reads it), in order, one pipeline."""
    layer = ResilientPubSubChannelLayer(hosts=[private_redis.url], prefix="test-blocking")
    sender = ResilientPubSubChannelLayer(hosts=[private_redis.url], prefix="test-blocking")
    try:
        first, second = await layer.new_channel(), await layer.new_channel()
        await layer.group_add("a", first)
        await layer.group_add("b", second)
        client = aredis.Redis.from_url(private_redis.url)
        connections_before = (await client.info("stats"))["total_connections_received"]
        sends = [("a" if n % 2 == 0 else "b", {"type": "event", "n": n}) for n in range(100)]
        await asyncio.to_thread(sender.group_send_blocking, sends)
        await asyncio.to_thread(sender.group_send_blocking, [("a", {"type": "event", "n": 100})])
        got_a = [(await asyncio.wait_for(layer.receive(first), 5))["n"] for _ in range(51)]
        got_b = [(await asyncio.wait_for(layer.receive(second), 5))["n"] for _ in range(50)]
        assert got_a == [*range(0, 100, 2), 100]
        assert got_b == list(range(1, 100, 2))
        opened = (await client.info("stats"))["total_connections_received"] - connections_before
        assert opened == 1, f"{opened} connections for two blocking sends"
        assert await command_calls(private_redis.url, "publish") == 101
        await client.aclose()
    finally:
        await layer.flush()


async def test_a_blocking_send_survives_a_redis_restart_and_fails_fast_while_it_is_down(
    private_redis: RedisHandle,
) -> None:
    layer = ResilientPubSubChannelLayer(hosts=[private_redis.url], prefix="test-blocking-restart")
    handle = private_redis
    try:
        await asyncio.to_thread(layer.group_send_blocking, [("g", {"type": "event"})])
        handle.stop()
        with pytest.raises(REDIS_ERRORS):
            await asyncio.to_thread(layer.group_send_blocking, [("g", {"type": "event"})])
        handle = start_embedded(port=port_of(private_redis))
        assert port_of(handle) == port_of(private_redis), "the port was taken meanwhile"
        # The pooled connection died with the old server: the send reconnects and goes out.
        await asyncio.to_thread(layer.group_send_blocking, [("g", {"type": "event"})])
        assert await command_calls(handle.url, "publish") == 1
    finally:
        handle.stop()


async def test_a_group_message_is_decoded_once_for_all_its_local_channels() -> None:
    layer = ResilientPubSubChannelLayer(hosts=[os.environ["REDIS_URL"]], prefix="test-decode-once")
    try:
        first, second = await layer.new_channel(), await layer.new_channel()
        await layer.group_add("g", first)
        await layer.group_add("g", second)
        await layer.group_send("g", {"type": "job.event", "job": {"id": "x", "seq": 1}})
        a = await asyncio.wait_for(layer.receive(first), 5)
        b = await asyncio.wait_for(layer.receive(second), 5)
        assert a == b == {"type": "job.event", "job": {"id": "x", "seq": 1}}
        assert a is not b, "each channel gets its own top-level dict"
        assert a["job"] is b["job"], "the nested job object is decoded once"
        await layer.group_send("g", {"type": "job.event", "job": {"id": "x", "seq": 2}})
        c = await asyncio.wait_for(layer.receive(first), 5)
        assert c["job"] == {"id": "x", "seq": 2}
    finally:
        await layer.flush()
