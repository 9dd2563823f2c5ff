"""The channel layer: channels-redis' ``RedisChannelLayer``, made to outlive Redis outages.

Two things the stock layer does not do (channels-redis 4.3.0, ``channels_redis/core.py``):

- **Idle sockets.** ``receive`` blocks in ``BZPOPMIN`` for ``brpop_timeout = 5`` seconds
  (core.py:104), and redis-py 8 gives every connection ``socket_timeout = 5`` s
  (``redis/_defaults.py``), so an idle receive times out on the socket just as Redis
  answers, and the consumer dies with ``TimeoutError`` (django/channels_redis#422). The
  settings give the layer's connections ``socket_timeout`` = :data:`SOCKET_TIMEOUT_S`, well
  above the blocking period.
- **Redis restarts.** A connection error in ``receive`` propagates to the consumer, which
  closes its socket (1011), and a Redis that came back empty has lost every group
  membership (``asgi:group:*`` keys) without any error at all, since redis-py retries on a
  fresh connection. :class:`ResilientRedisChannelLayer` waits for Redis with backoff
  instead of raising, and notices lost data by a marker key of its own that a restart or
  flush removes. Either way it then hands every local channel one event of type
  :data:`EVENT_RECONNECTED`; consumers answer it by joining their groups again and
  re-reading their jobs (``realtime.consumers``), so an open socket keeps receiving.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Final

from channels_redis.core import RedisChannelLayer
from redis.asyncio import BlockingConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

#: Event type a consumer receives after the layer lost Redis or Redis lost its data
#: (handled by ``layer_reconnected``).
EVENT_RECONNECTED: Final = "layer.reconnected"
#: ``socket_timeout`` of the layer's Redis connections, seconds: above the 5 s BZPOPMIN of
#: ``RedisChannelLayer.brpop_timeout``, so an idle receive never times out on the socket.
SOCKET_TIMEOUT_S: Final = 5 * 3
#: Seconds between two checks of the marker key (at most one SET per process per period).
MARKER_CHECK_S: Final = 2.0
#: The marker expires after this many seconds without a check (a web process that is gone
#: leaves no key behind for long); a process that received nothing for as long reads its
#: expiry as lost data once, which costs one harmless resync.
MARKER_TTL_S: Final = 24 * 3600
#: Backoff while Redis does not answer, seconds: first and longest wait.
RETRY_FIRST_S: Final = 0.2
RETRY_MAX_S: Final = 5.0
#: Retries of a command on a fresh connection after a connection error.
RECONNECT_RETRIES: Final = 3
#: What redis-py raises when the server is away.
REDIS_ERRORS: Final = (RedisConnectionError, RedisTimeoutError, OSError)
#: Connections of one host's pool in one process (redis-py's own default).
POOL_MAX_CONNECTIONS: Final = 100
#: Seconds a command waits for a free pooled connection before it fails.
POOL_WAIT_S: Final = 10.0


class ResilientRedisChannelLayer(RedisChannelLayer):  # type: ignore[misc]
    """``RedisChannelLayer`` whose ``receive`` survives Redis outages and data loss.

    Same configuration as the stock layer. ``outages`` counts the losses this process saw
    (an outage, or a marker found missing); each local channel gets one
    ``{"type": EVENT_RECONNECTED}`` per loss, from its next ``receive``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for host in self.hosts:  # the connection kwargs of each host (channels_redis/utils.py decode_hosts)
            host.setdefault("socket_timeout", SOCKET_TIMEOUT_S)
            # channels-redis builds its pools with ConnectionPool.from_url, whose connections
            # retry nothing (redis/asyncio/connection.py: Retry(NoBackoff(), 0) unless
            # retry_on_error is given): after a Redis restart, every pooled connection would
            # fail its next command once. Retry on a fresh connection instead.
            host.setdefault("retry_on_error", [RedisConnectionError, RedisTimeoutError])
            host.setdefault("retry", Retry(ExponentialBackoff(cap=0.5, base=0.05), RECONNECT_RETRIES))
        self.outages = 0
        self._told: dict[str, int] = {}
        self._marker = f"{self.prefix}:alive:{self.client_prefix}"
        self._marker_set = False
        self._marker_checked = 0.0

    def create_pool(self, index: int) -> Any:
        """The stock pool of host ``index`` (channels_redis/core.py ``create_pool``), but one that
        waits up to ``POOL_WAIT_S`` for a free connection once ``max_connections`` (default
        ``POOL_MAX_CONNECTIONS``) are in use. The stock ``ConnectionPool`` raises
        ``MaxConnectionsError`` there (redis-py 8: redis/asyncio/connection.py, 100 by default),
        and a burst of viewers subscribing at once answered ``internal``. Sentinel hosts keep
        the stock pool."""
        host = dict(self.hosts[index])
        if "address" not in host:
            return super().create_pool(index)
        address = host.pop("address")
        host.setdefault("max_connections", POOL_MAX_CONNECTIONS)
        host.setdefault("timeout", POOL_WAIT_S)
        return BlockingConnectionPool.from_url(address, **host)

    async def receive(self, channel: str) -> dict[str, Any]:
        """The next message of ``channel``, or :data:`EVENT_RECONNECTED` once after a loss."""
        if self._told.setdefault(channel, self.outages) < self.outages:
            self._told[channel] = self.outages
            return {"type": EVENT_RECONNECTED}
        try:
            message: dict[str, Any] = await super().receive(channel)
        except asyncio.CancelledError:
            self._told.pop(channel, None)  # the consumer is gone
            raise
        if message.get("type") == EVENT_RECONNECTED:
            self._told[channel] = self.outages
        return message

    async def _brpop_with_clean(self, index: int, channel: str, timeout: float) -> Any:
        """The stock BZPOPMIN (run by whichever local receiver holds the receive lock), plus:
        wait out an outage, and check the marker; after a loss, return one message for every
        local channel (the ``__asgi_channel__`` list form the stock layer uses for groups)."""
        try:
            await self._check_marker(index)
            return await super()._brpop_with_clean(index, channel, timeout)
        except REDIS_ERRORS as exc:
            await self._wait_for_redis(index, exc)
        return self._reconnected_message()

    async def _check_marker(self, index: int) -> None:
        now = time.monotonic()
        if now - self._marker_checked < MARKER_CHECK_S:
            return
        self._marker_checked = now
        # One command: refresh the marker and learn whether it was there (SET ... GET).
        previous = await self.connection(index).set(self._marker, 1, ex=MARKER_TTL_S, get=True)
        if previous is None and self._marker_set:
            logger.warning("channel layer: Redis lost its data (restart or flush); consumers rejoin their groups")
            raise RedisConnectionError("channel-layer marker key gone")
        self._marker_set = True

    async def _wait_for_redis(self, index: int, exc: BaseException) -> None:
        logger.warning("channel layer: Redis unreachable (%s); waiting for it", exc)
        delay = RETRY_FIRST_S
        started = time.monotonic()
        while True:
            await asyncio.sleep(delay)
            try:
                await self.connection(index).set(self._marker, 1, ex=MARKER_TTL_S)
            except REDIS_ERRORS:
                delay = min(RETRY_MAX_S, delay * 2)
                continue
            break
        self._marker_set = True
        self._marker_checked = time.monotonic()
        self.outages += 1
        logger.warning("channel layer: Redis answers again after %.1f s; consumers rejoin", time.monotonic() - started)

    def _reconnected_message(self) -> bytes:
        waiting = list(self.receive_buffer)
        message = {"type": EVENT_RECONNECTED, "__asgi_channel__": waiting}
        return bytes(self.serialize(message))
