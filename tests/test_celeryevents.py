"""proj/celeryevents.py: the worker's event dispatcher keeps task events that pool threads
buffer while it publishes (Celery 5.6.3 loses them; celery/celery#10434)."""

from __future__ import annotations

from typing import Any

from celery.events.dispatcher import EventDispatcher as CeleryEventDispatcher

from proj.celery import app
from proj.celeryevents import EventDispatcher


def buffered_dispatcher(cls: Any) -> Any:
    """A dispatcher of ``cls`` (for the app) buffering the ``task`` group, with no connection:
    ``_publish`` is replaced by each test."""
    return app.subclass_with_self(cls, reverse="events.Dispatcher")(None, enabled=False, buffer_group={"task"})


def flush_while_a_pool_thread_appends(dispatcher: Any) -> tuple[list[str], list[str]]:
    """Flush two buffered events while a third is appended during the publish (as a pool thread
    does while the socket write releases the GIL); ``(published, still buffered)``."""
    buffer = dispatcher._group_buffer["task"]
    buffer.extend(["task-received", "task-started"])
    published: list[str] = []

    def publish(batch: list[str], producer: Any, routing_key: str) -> None:
        assert routing_key == "task.multi"
        published.extend(batch)
        buffer.append("task-succeeded")

    dispatcher._publish = publish
    dispatcher.flush()
    return published, list(buffer)


def test_the_workers_dispatcher_is_the_one_that_keeps_them():
    assert issubclass(app.events.Dispatcher, EventDispatcher)


def test_an_event_appended_during_the_publish_stays_buffered_for_the_next_flush():
    dispatcher = buffered_dispatcher(EventDispatcher)
    published, buffered = flush_while_a_pool_thread_appends(dispatcher)
    assert published == ["task-received", "task-started"]
    assert buffered == ["task-succeeded"]


def test_celerys_own_dispatcher_loses_it():
    """What the backport is for; when this fails, Celery has the fix: remove proj/celeryevents.py."""
    published, buffered = flush_while_a_pool_thread_appends(buffered_dispatcher(CeleryEventDispatcher))
    assert "task-succeeded" not in published + buffered
