"""Messaging: group names, event shapes, and the worker's single event loop on real Redis."""

from __future__ import annotations

import os
import socket
import uuid
from typing import Any

import pytest
import redis
from channels.layers import BaseChannelLayer, channel_layers

from realtime import messaging


def test_group_name_is_valid_and_stable():
    job_id = uuid.uuid4()
    group = messaging.job_group(job_id)
    assert group == messaging.job_group(str(job_id).upper())
    assert group == f"job.{job_id.hex}"
    assert BaseChannelLayer().require_valid_group_name(group)


def test_frame_types_per_state():
    assert messaging.frame_type_for("running") == "job.progress"
    assert messaging.frame_type_for("cancelling") == "job.progress"
    assert messaging.frame_type_for("succeeded") == "job.succeeded"
    assert messaging.frame_type_for("failed") == "job.failed"
    assert messaging.frame_type_for("cancelled") == "job.cancelled"


@pytest.fixture
def redis_layer(settings):
    """The project's channel layer (``proj.settings``) on the test Redis."""
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "realtime.layers.ResilientPubSubChannelLayer",
            "CONFIG": {"hosts": [os.environ["REDIS_URL"]], "prefix": "test-messaging"},
        }
    }
    channel_layers.backends.clear()
    yield channel_layers["default"]
    channel_layers.backends.clear()


def test_sends_from_sync_code_reuse_one_redis_connection(redis_layer):
    """The hot path of a Celery worker: 50 sends, not 50 new Redis connections
    (``async_to_sync(group_send)`` would open one per call: django/channels_redis#125)."""
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    job = {"id": str(uuid.uuid4()), "state": "running", "seq": 1}
    messaging.send_job_event(job)  # first send opens the pool
    before = client.info("stats")["total_connections_received"]
    for seq in range(2, 52):
        messaging.send_job_event({**job, "seq": seq})
    opened = client.info("stats")["total_connections_received"] - before
    assert opened == 0, f"{opened} connections opened for 50 sends"
    client.close()


def test_a_batch_reaches_a_subscriber_in_order_in_the_layers_format(redis_layer):
    jobs: list[dict[str, Any]] = [{"id": str(uuid.uuid4()), "state": "running", "seq": n} for n in range(3)]
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    listener = client.pubsub()
    names = [f"test-messaging__group__{messaging.job_group(job['id'])}" for job in jobs]
    listener.subscribe(*names)
    for _ in names:
        assert listener.get_message(timeout=5)["type"] == "subscribe"
    messaging.send_job_events(jobs)
    got = [listener.get_message(timeout=5) for _ in jobs]
    assert [message["channel"].decode() for message in got] == names
    assert [redis_layer.deserialize(message["data"]) for message in got] == [messaging.job_event(job) for job in jobs]
    listener.close()
    client.close()


def test_a_send_while_redis_is_away_is_logged_not_raised(settings, caplog):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "realtime.layers.ResilientPubSubChannelLayer",
            "CONFIG": {"hosts": [f"redis://127.0.0.1:{free_port()}/0"]},
        }
    }
    channel_layers.backends.clear()
    try:
        messaging.send_job_events([{"id": str(uuid.uuid4()), "state": "running", "seq": 1}])
    finally:
        channel_layers.backends.clear()
    assert "publishing 1 job events failed" in caplog.text


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
