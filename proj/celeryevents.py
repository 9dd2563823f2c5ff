"""Celery's task events, with a fix for the threads pool that Celery 5.6.3 lacks.

Celery 5.6.3 loses the ``task-started`` and ``task-succeeded`` events of tasks run by the threads
pool (our worker-progress), so Flower shows such tasks ``RECEIVED`` forever. The worker buffers
task events per group and ``EventDispatcher.flush`` publishes the live list, then clears it
(celery/events/dispatcher.py:211-213 in 5.6.3: ``self._publish(events, ...)``, then
``events[:] = []``); the publish releases the GIL on its socket write, and events that pool
threads append meanwhile are in neither the message sent nor the buffer afterwards. The
main thread's ``task-received`` survives. Fixed upstream (celery/celery#10434, commit 5136c0f,
"don't drop buffered events appended during publish"): publish a copy and delete only what
was published. Celery 5.7.0, which has the fix, cannot be used here (requirements/base.txt: its
worker exits on a broker connection loss), so :class:`EventDispatcher` backports that flush,
and :class:`Events` (the app's ``events`` class, ``proj.celery``) hands it to the worker.
Remove both with an upgrade past 5.7.0.
"""

from __future__ import annotations

from typing import Any

from celery.app.events import Events as CeleryEvents
from celery.events.dispatcher import EventDispatcher as CeleryEventDispatcher


class EventDispatcher(CeleryEventDispatcher):  # type: ignore[misc]
    """Celery's dispatcher whose flush keeps the group events appended while it publishes."""

    def flush(self, errors: bool = True, groups: bool = True) -> None:
        """Publish the outbound buffer (``errors``: events that failed to publish before) and
        the buffered groups (``groups``); as Celery 5.6.3, except that a group's events appended
        by other threads during the publish stay buffered for the next flush (celery 5136c0f)."""
        if errors:
            buf = list(self._outbound_buffer)
            try:
                with self.mutex:
                    for event, routing_key, _ in buf:
                        self._publish(event, self.producer, routing_key)
            finally:
                self._outbound_buffer.clear()
        if groups:
            with self.mutex:
                for group, events in self._group_buffer.items():
                    if not events:
                        continue
                    batch = list(events)
                    self._publish(batch, self.producer, f"{group}.multi")
                    del events[: len(batch)]


class Events(CeleryEvents):  # type: ignore[misc]
    """The app's events: Celery's, with :class:`EventDispatcher`."""

    dispatcher_cls: Any = "proj.celeryevents:EventDispatcher"
