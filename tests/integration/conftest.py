"""Integration fixtures: one real stack per test session, logged-in HTTP sessions."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.integration.browser import browser, page  # noqa: F401 - browser fixtures for every browser test
from tests.integration.stack import DEMO_PASSWORD, OTHER_USER, HttpSession, Stack, build_stack


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    running = build_stack(os.environ["REDIS_URL"])
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def demo(stack: Stack) -> HttpSession:
    return HttpSession(stack).login("demo", DEMO_PASSWORD)


@pytest.fixture
def mallory(stack: Stack) -> HttpSession:
    return HttpSession(stack).login(*OTHER_USER)
