"""Messaging: group names, event shapes, and the worker's single event loop on real Redis."""

from __future__ import annotations

import os
import uuid

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
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [os.environ["REDIS_URL"]]}}
    }
    channel_layers.backends.clear()
    yield channel_layers["default"]
    channel_layers.backends.clear()


def test_worker_loop_reuses_one_redis_connection_for_many_sends(redis_layer, monkeypatch):
    """The hot path of a Celery worker: 50 group_sends, not 50 new Redis connections."""
    monkeypatch.setattr(messaging, "_use_worker_loop", True)
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    job = {"id": str(uuid.uuid4()), "state": "running", "seq": 1}
    messaging.send_job_event(job)  # first send opens the pool
    before = client.info("stats")["total_connections_received"]
    for seq in range(2, 52):
        messaging.send_job_event({**job, "seq": seq})
    opened = client.info("stats")["total_connections_received"] - before
    assert opened == 0, f"{opened} connections opened for 50 sends"
    client.close()


def test_plain_async_to_sync_would_open_a_connection_per_send(redis_layer, monkeypatch):
    """Why the worker loop exists (django/channels_redis#125): the default path reconnects."""
    monkeypatch.setattr(messaging, "_use_worker_loop", False)
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    job = {"id": str(uuid.uuid4()), "state": "running", "seq": 1}
    before = client.info("stats")["total_connections_received"]
    for seq in range(1, 11):
        messaging.send_job_event({**job, "seq": seq})
    assert client.info("stats")["total_connections_received"] - before >= 10
    client.close()
