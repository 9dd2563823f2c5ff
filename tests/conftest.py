"""Shared fixtures: users, the in-memory channel layer for unit tests, the real broker."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from channels.layers import channel_layers

from tasks_app import ticks
from tests.factories import make_user

IN_MEMORY_LAYER = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


@pytest.fixture
def user(db: None) -> Any:
    return make_user("alice")


@pytest.fixture
def other_user(db: None) -> Any:
    return make_user("mallory")


@pytest.fixture
def memory_layer(settings: Any) -> Iterator[Any]:
    """Unit tests: the in-memory channel layer instead of Redis."""
    settings.CHANNEL_LAYERS = IN_MEMORY_LAYER
    channel_layers.backends.clear()
    yield channel_layers["default"]
    channel_layers.backends.clear()


@dataclass
class QueuedTask:
    name: str
    args: list[Any]
    countdown: bool
    #: The message's ``ignore_result`` header (the worker obeys it over the task's option).
    ignore_result: bool = False


class Broker:
    """Reads what was sent to the real Redis broker (the test database of REDIS_URL)."""

    def __init__(self) -> None:
        self.client = redis.Redis.from_url(os.environ["REDIS_URL"])

    def queued(self, queue: str) -> list[QueuedTask]:
        tasks = []
        for raw in self.client.lrange(queue, 0, -1):
            message = json.loads(raw)
            headers = message["headers"]
            body = json.loads(base64.b64decode(message["body"]))
            eta = headers.get("eta") is not None
            tasks.append(QueuedTask(headers["task"], body[0], eta, bool(headers.get("ignore_result"))))
        return list(reversed(tasks))  # kombu LPUSHes: oldest last

    def flush(self) -> None:
        self.client.flushdb()


@pytest.fixture
def broker() -> Iterator[Broker]:
    b = Broker()
    b.flush()
    ticks.forget_armed()  # the ticks this process sent are gone with the flush
    yield b
    b.flush()
    ticks.forget_armed()
    b.client.close()
