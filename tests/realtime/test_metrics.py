"""The sockets' and the channel layer's series (realtime/metrics.py), counted where they happen:
frames and open sockets in the consumers (``WebsocketCommunicator``, in-memory layer), dropped
events and reconnects in the Redis layer, failed publishes in ``messaging``. Values are read
from this process's registry, as a scrape of the web process reads them."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aredis
from channels.db import database_sync_to_async
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser
from prometheus_client import REGISTRY
from redis.exceptions import ConnectionError as RedisConnectionError

from proj.localredis import RedisHandle, start_embedded
from realtime import messaging
from realtime.consumers import JobsConsumer, SeedProgressConsumer
from realtime.layers import EVENT_RECONNECTED, ResilientPubSubChannelLayer
from tasks_app import services
from tests.realtime.test_messaging import free_port
from tests.waiting import wait_for_async

FRAMES = "jobs_ws_frames_sent_total"
OPEN = "jobs_ws_open_sockets"


def sample(name: str, **labels: str) -> float:
    """This process's value of sample ``name`` (0 for a series not made yet)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def open_socket(user: Any, consumer: Any = JobsConsumer, path: str = "/ws/jobs/") -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(consumer.as_asgi(), path)
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    assert connected
    return communicator


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("memory_layer", "broker")
async def test_every_frame_sent_is_counted_and_a_socket_while_it_is_open(user):
    frames, sockets = sample(FRAMES, endpoint="jobs"), sample(OPEN, endpoint="jobs")
    comm = await open_socket(user)
    assert sample(OPEN, endpoint="jobs") == sockets + 1
    received = []
    await comm.send_json_to({"type": "job.start", "kind": "simulated", "params": {"step": 50}})
    received.append(await comm.receive_json_from(timeout=3))  # job.accepted (send_json)
    await database_sync_to_async(services.job_run)(job_id=received[0]["job"]["id"])
    received.append(await comm.receive_json_from(timeout=3))  # a live frame (send, encoded once)
    await comm.send_json_to({"type": "job.list"})
    received.append(await comm.receive_json_from(timeout=3))
    await comm.send_to(text_data="not json")
    received.append(await comm.receive_json_from(timeout=3))  # an error frame
    assert [frame["type"] for frame in received] == ["job.accepted", "job.progress", "job.list", "error"]
    assert sample(FRAMES, endpoint="jobs") - frames == len(received)
    await comm.disconnect()
    assert sample(OPEN, endpoint="jobs") == sockets


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("memory_layer", "broker")
async def test_the_seed_endpoint_counts_under_its_own_label(user):
    frames, sockets = sample(FRAMES, endpoint="prog"), sample(OPEN, endpoint="prog")
    v1_frames = sample(FRAMES, endpoint="jobs")
    comm = await open_socket(user, SeedProgressConsumer, "/prog/")
    assert await comm.receive_json_from(timeout=3) == {"accept": True}
    await comm.send_json_to({"action": "dance"})
    assert "error" in await comm.receive_json_from(timeout=3)
    assert (sample(FRAMES, endpoint="prog") - frames, sample(OPEN, endpoint="prog") - sockets) == (2, 1)
    assert sample(FRAMES, endpoint="jobs") == v1_frames
    await comm.disconnect()
    assert sample(OPEN, endpoint="prog") == sockets


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("memory_layer")
async def test_a_refused_handshake_is_neither_an_open_socket_nor_a_frame():
    frames, sockets = sample(FRAMES, endpoint="jobs"), sample(OPEN, endpoint="jobs")
    communicator = WebsocketCommunicator(JobsConsumer.as_asgi(), "/ws/jobs/")
    communicator.scope["user"] = AnonymousUser()
    connected, _ = await communicator.connect()
    assert connected is False
    await communicator.disconnect()
    assert (sample(FRAMES, endpoint="jobs"), sample(OPEN, endpoint="jobs")) == (frames, sockets)


async def test_events_a_full_local_channel_drops_are_counted() -> None:
    layer = ResilientPubSubChannelLayer(hosts=[os.environ["REDIS_URL"]], prefix="test-metrics-capacity", capacity=1)
    dropped = sample("jobs_layer_events_dropped_total")
    try:
        channel = await layer.new_channel()
        await layer.group_add("g", channel)
        for n in range(4):
            await layer.group_send("g", {"type": "event", "n": n})

        async def three_dropped() -> bool:
            return layer.dropped >= 3

        await wait_for_async(three_dropped, 5, desc="three events dropped")
        assert sample("jobs_layer_events_dropped_total") - dropped == layer.dropped == 3
        assert (await asyncio.wait_for(layer.receive(channel), 5))["n"] == 0
    finally:
        await layer.flush()


@pytest.fixture
async def private_redis() -> AsyncIterator[RedisHandle]:
    handle = start_embedded()
    yield handle
    handle.stop()


async def test_a_reconnect_of_the_subscriber_connection_is_counted(private_redis: RedisHandle) -> None:
    layer = ResilientPubSubChannelLayer(hosts=[private_redis.url], prefix="test-metrics-reconnect")
    admin = aredis.Redis.from_url(private_redis.url)
    reconnects = sample("jobs_layer_redis_reconnects_total")
    try:
        channel = await layer.new_channel()
        await layer.group_add("g", channel)
        receiving = asyncio.ensure_future(layer.receive(channel))
        assert await admin.client_kill_filter(_type="pubsub") == 1  # Redis drops the subscriber connection
        assert await asyncio.wait_for(receiving, 20) == {"type": EVENT_RECONNECTED}
        assert sample("jobs_layer_redis_reconnects_total") - reconnects == layer.outages == 1
    finally:
        await admin.aclose()
        await layer.flush()


def test_events_that_fail_to_publish_are_counted_each(settings):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "realtime.layers.ResilientPubSubChannelLayer",
            "CONFIG": {"hosts": [f"redis://127.0.0.1:{free_port()}/0"]},  # nothing answers there
        }
    }
    channel_layers.backends.clear()
    failed = sample("jobs_events_publish_failed_total")
    try:
        messaging.send_job_events([{"id": str(uuid.uuid4()), "state": "running", "seq": n} for n in range(3)])
        messaging.send_job_event({"id": str(uuid.uuid4()), "state": "running", "seq": 1})
    finally:
        channel_layers.backends.clear()
    assert sample("jobs_events_publish_failed_total") - failed == 4


def test_a_layer_without_a_blocking_send_counts_each_failed_group_send(memory_layer, monkeypatch):
    async def away(group: str, message: dict[str, Any]) -> None:
        raise RedisConnectionError("Redis is away")

    monkeypatch.setattr(memory_layer, "group_send", away)
    failed = sample("jobs_events_publish_failed_total")
    messaging.send_job_events([{"id": str(uuid.uuid4()), "state": "running", "seq": n} for n in range(2)])
    assert sample("jobs_events_publish_failed_total") - failed == 2
