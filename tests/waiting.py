"""The one "eventually" helper of the tests (STYLE.md "Tests": no hand-made deadline loops or
bare sleeps): ``wait_for(predicate, timeout, interval, desc)``, and ``wait_for_async`` for
coroutines."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T | None], timeout: float, interval: float = 0.1, desc: str = "the condition"
) -> T:
    """Call ``predicate`` every ``interval`` seconds until it returns a truthy value; return it.

    The predicate runs at least once, and once more at the deadline. Raises ``AssertionError``
    naming ``desc`` (and the last value) when ``timeout`` seconds pass first; exceptions of the
    predicate propagate.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {desc} (last value: {value!r})")
        time.sleep(min(interval, remaining))


async def wait_for_async(
    predicate: Callable[[], Awaitable[T | None]], timeout: float, interval: float = 0.05, desc: str = "the condition"
) -> T:
    """:func:`wait_for` for coroutines: awaits ``predicate()`` every ``interval`` seconds
    (the event loop runs meanwhile) until it returns a truthy value; raises ``AssertionError``
    naming ``desc`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {desc} (last value: {value!r})")
        await asyncio.sleep(min(interval, remaining))
