"""The channel layer: channels-redis' pub/sub layer, made to outlive Redis outages.

(Over ~350 lines: one subclass of channels-redis' layer and its shard connection, whose
overrides only make sense side by side; each cites the library line it replaces.)

Why pub/sub (``channels_redis.pubsub.RedisPubSubChannelLayer``, channels-redis 4.3.0) and
not the list-based ``RedisChannelLayer``: a ``group_send`` is one ``PUBLISH``, each web
process receives it once on its one subscriber connection and hands it to its local
channels in the group (pubsub.py ``_receive_message``). The list layer pushes one copy per
member channel and the web process pops them one ``BZPOPMIN`` at a time, so one job event
to 1,000 sockets cost 1,000 Redis round trips (README "Performance" has the figures).
Group memberships live in the web process, not in Redis keys, so a Redis that comes back
empty loses none of them; events sent while Redis is away are lost, and the database row
is the truth (DESIGN.md "Celery rules").

What this module adds to the stock pub/sub layer:

- **Outages.** The stock receive loop logs every connection error and retries each second
  (pubsub.py ``_do_receiving``). Here it waits with backoff, quietly; redis-py's ``PubSub``
  reconnects on the next read and subscribes again to every channel it had
  (redis/asyncio/client.py ``PubSub._execute`` and ``on_connect``). Every reconnect of the
  subscriber connection, a short blip that the connection's retries hid included, hands
  every local channel one ``{"type": EVENT_RECONNECTED}``: events may have been missed, and
  consumers answer it by re-reading their jobs (``realtime.consumers``).
- **Subscribed means subscribed.** ``group_add`` returns once Redis confirmed the
  ``SUBSCRIBE`` (the stock layer returns once it was written), so an event published after a
  consumer joined and then read its snapshot cannot be missed.
- **Bounded queues.** A local channel holds at most ``capacity`` events (default
  :data:`CAPACITY`); more are dropped, as the list layer's ``capacity`` did, instead of
  growing without bound behind a consumer that stopped reading (the stock queues are
  unbounded, and a full one would stall the receive loop).
- **Pools that wait.** Publishing uses redis-py's ``BlockingConnectionPool`` (up to
  :data:`POOL_MAX_CONNECTIONS`, waiting up to :data:`POOL_WAIT_S` for a free connection)
  where the stock pool raises ``MaxConnectionsError``, and connections retry a command on a
  fresh connection after a connection error.
- **Sends from synchronous code** (:meth:`ResilientPubSubChannelLayer.group_send_blocking`).
  A Celery worker has no event loop; ``async_to_sync(group_send)`` there runs a new loop per
  call, and channels-redis keeps pools per loop (django/channels_redis#125). The blocking send
  publishes exactly what ``group_send`` publishes (pubsub.py ``group_send``: ``PUBLISH
  <prefix>__group__<group> serialize(message)`` on the shard ``_consistent_hash`` picks) with
  redis-py's synchronous client, one pipeline (one round trip) per shard for a batch. Measured
  against the former route (one long-lived loop in a thread, ``run_coroutine_threadsafe`` per
  send): README "Performance".
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Sequence
from typing import Any, Final

import redis
from channels_redis.pubsub import RedisPubSubChannelLayer, RedisPubSubLoopLayer, RedisSingleShardConnection
from channels_redis.utils import _consistent_hash, _wrap_close, create_pool, decode_hosts
from redis import asyncio as aioredis
from redis.asyncio import BlockingConnectionPool
from redis.asyncio.client import PubSub
from redis.asyncio.connection import Connection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry as SyncRetry
from redis.sentinel import Sentinel, SentinelConnectionPool

from realtime import metrics

logger = logging.getLogger(__name__)

#: Event type a consumer receives after the layer lost Redis (handled by ``layer_reconnected``).
EVENT_RECONNECTED: Final = "layer.reconnected"
#: Events one local channel holds before further ones are dropped.
CAPACITY: Final = 200
#: ``socket_timeout`` of the layer's connections, seconds.
SOCKET_TIMEOUT_S: Final = 15
#: redis-py pings an idle subscriber connection this often, seconds, so a connection that
#: died silently (a NAT or a failover dropped it) is noticed.
HEALTH_CHECK_S: Final = 10
#: How long the receive loop waits for a message before it checks its state again, seconds.
RECEIVE_POLL_S: Final = 1.0
#: Longest wait for Redis to confirm a ``SUBSCRIBE``, seconds (then ``group_add`` returns anyway).
SUBSCRIBE_CONFIRM_S: Final = 5.0
#: Backoff while Redis does not answer, seconds: first and longest wait.
RETRY_FIRST_S: Final = 0.1
RETRY_MAX_S: Final = 2.0
#: Retries of a command on a fresh connection after a connection error.
RECONNECT_RETRIES: Final = 3
#: Longest wait of a blocking send for Redis (to connect, and for each reply), seconds.
SEND_TIMEOUT_S: Final = 5.0
#: Retries of a blocking send on a fresh connection after a connection error.
SEND_RETRIES: Final = 1
#: What redis-py raises when the server is away.
REDIS_ERRORS: Final = (RedisConnectionError, RedisTimeoutError, OSError)
#: Connections of one host's publishing pool in one process (redis-py's own default).
POOL_MAX_CONNECTIONS: Final = 100
#: Seconds a command waits for a free pooled connection before it fails.
POOL_WAIT_S: Final = 10.0


class ResilientPubSubChannelLayer(RedisPubSubChannelLayer):  # type: ignore[misc]
    """``RedisPubSubChannelLayer`` that survives Redis outages (module docstring).

    Configuration: ``hosts`` (as channels-redis: URLs or dicts of connection options),
    ``prefix``, ``capacity`` (events a local channel holds, default :data:`CAPACITY`).
    ``outages`` counts the outages this process recovered from; ``dropped`` the events
    dropped because a local channel was full.
    """

    def __init__(self, *args: Any, capacity: int = CAPACITY, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.capacity = capacity
        self.outages = 0
        self.dropped = 0
        self._blocking_clients: tuple[int, list[redis.Redis]] | None = None
        self._blocking_lock = threading.Lock()

    def group_send_blocking(self, sends: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Publish each ``(group, message)`` of ``sends`` from synchronous code, in order: what
        ``await group_send(group, message)`` would publish, one pipeline (one round trip) per
        shard for the whole batch. Safe from several threads and across ``fork`` (clients are
        made per process).

        Raises redis-py's ``ConnectionError``/``TimeoutError`` (:data:`REDIS_ERRORS`) when Redis
        does not answer after the connection's retries; then none or some of the batch went out.
        Hosts given by ``address`` and Sentinel hosts (``sentinels``, ``master_name``) both work;
        after a failover a send reconnects to the new primary (:func:`_blocking_pool`).
        """
        clients = self._clients_of_this_process()
        prefix = self._kwargs.get("prefix", "asgi")
        batches: dict[int, Any] = {}
        for group, message in sends:
            name = f"{prefix}__group__{group}"  # pubsub.py RedisPubSubLoopLayer._get_group_channel_name
            shard = _consistent_hash(name, len(clients))
            pipe = batches.get(shard)
            if pipe is None:
                pipe = batches[shard] = clients[shard].pipeline(transaction=False)
            pipe.publish(name, self.serialize(message))
        for pipe in batches.values():
            pipe.execute()

    def _clients_of_this_process(self) -> list[redis.Redis]:
        """One synchronous client per host (in ``hosts`` order), made once per process."""
        with self._blocking_lock:
            made = self._blocking_clients
            if made is None or made[0] != os.getpid():
                hosts = self._args[0] if self._args else self._kwargs.get("hosts")
                clients = [redis.Redis(connection_pool=_blocking_pool(host)) for host in decode_hosts(hosts)]
                made = self._blocking_clients = (os.getpid(), clients)
            return made[1]

    def _get_layer(self) -> _LoopLayer:
        # pubsub.py RedisPubSubChannelLayer._get_layer, with this module's loop layer.
        loop = asyncio.get_running_loop()
        try:
            layer: _LoopLayer = self._layers[loop]
        except KeyError:
            layer = _LoopLayer(*self._args, **self._kwargs, channel_layer=self)
            self._layers[loop] = layer
            _wrap_close(self, loop)
        return layer


class _LoopLayer(RedisPubSubLoopLayer):  # type: ignore[misc]
    """One event loop's layer: bounded queues, and shards that survive outages."""

    def __init__(self, hosts: Any = None, *args: Any, channel_layer: ResilientPubSubChannelLayer, **kwargs: Any):
        super().__init__(hosts, *args, channel_layer=channel_layer, **kwargs)
        self.outer = channel_layer
        self._last_data: bytes | None = None
        self._last_message: dict[str, Any] = {}
        self._shards = [_Shard(_with_defaults(host), self) for host in decode_hosts(hosts)]

    async def _subscribe_to_channel(self, channel: str) -> None:
        self.channels[channel] = asyncio.Queue(maxsize=self.outer.capacity)
        await self._get_shard(channel).subscribe(channel)

    async def receive(self, channel: str) -> Any:
        """The next message of ``channel`` (pubsub.py ``receive``). A receive cancelled because
        its consumer left (or the process is stopping: Ctrl-C in ``manage.py jobs --watch``)
        forgets the channel and unsubscribes it; a failure of that unsubscribe is logged at
        debug level, where the stock layer logs it with a traceback."""
        if channel not in self.channels:
            await self._subscribe_to_channel(channel)
        try:
            message = await self.channels[channel].get()
        except (asyncio.CancelledError, TimeoutError, GeneratorExit):
            if self.channels.pop(channel, None) is not None:
                try:
                    await self._get_shard(channel).unsubscribe(channel)
                except BaseException as exc:  # the cancellation being handled is the one raised
                    logger.debug("channel layer: unsubscribe of %s after cancel failed: %r", channel, exc)
            raise
        return self._decoded(message)

    def _decoded(self, data: bytes) -> dict[str, Any]:
        """``data`` deserialized, decoded once for all the local channels of one group message:
        the receive loop hands each of them the same bytes object (:meth:`put`), so the last one
        decoded is remembered by identity. Each channel gets its own top-level dict; values
        nested in it are shared by the channels of that message and must be treated as
        read-only (Channels' consumers and ours only read them)."""
        if data is not self._last_data:
            self._last_message = self.outer.deserialize(data)
            self._last_data = data
        return dict(self._last_message)

    def put(self, channel: str, data: bytes) -> None:
        """Queue ``data`` for local ``channel``; dropped (and counted) when its queue is full."""
        queue = self.channels.get(channel)
        if queue is None:
            return
        try:
            queue.put_nowait(data)
        except asyncio.QueueFull:
            self.outer.dropped += 1
            metrics.EVENTS_DROPPED.inc()
            logger.debug("channel layer: %s is full; event dropped", channel)

    def reconnected(self) -> None:
        """Hand every local channel one :data:`EVENT_RECONNECTED` (after an outage)."""
        self.outer.outages += 1
        metrics.REDIS_RECONNECTS.inc()
        event = self.outer.serialize({"type": EVENT_RECONNECTED})
        for channel in list(self.channels):
            self.put(channel, event)


def _with_defaults(host: dict[str, Any]) -> dict[str, Any]:
    host = dict(host)
    host.setdefault("socket_timeout", SOCKET_TIMEOUT_S)
    host.setdefault("health_check_interval", HEALTH_CHECK_S)
    # ConnectionPool.from_url's connections retry nothing (redis/asyncio/connection.py:
    # Retry(NoBackoff(), 0) unless retry_on_error is given): after a Redis restart every
    # pooled connection would fail its next command once.
    host.setdefault("retry_on_error", [RedisConnectionError, RedisTimeoutError])
    host.setdefault("retry", Retry(ExponentialBackoff(cap=0.5, base=0.05), RECONNECT_RETRIES))
    return host


class _CountingPubSub(PubSub):
    """redis-py's ``PubSub`` that counts the reconnects of its connection in ``connects``.
    ``on_connect`` is the connection's connect callback, registered once the connection is
    taken from the pool already connected (redis/asyncio/client.py:1283-1286, ``PubSub.connect``),
    so it runs on reconnects only."""

    connects = 0

    async def on_connect(self, connection: Connection) -> None:
        self.connects += 1
        await super().on_connect(connection)


class _Shard(RedisSingleShardConnection):  # type: ignore[misc]
    """The connection to one Redis host: a subscriber connection and a publishing pool."""

    channel_layer: _LoopLayer
    _redis: aioredis.Redis | None
    _pubsub: _CountingPubSub | None

    def __init__(self, host: dict[str, Any], channel_layer: _LoopLayer) -> None:
        super().__init__(host, channel_layer)
        self._confirmations: dict[str, asyncio.Future[None]] = {}
        self._lost_at: float | None = None
        self._connects_seen = 0

    def _ensure_redis(self) -> None:
        if self._redis is None:
            self._redis = aioredis.Redis(connection_pool=_pool(self.host))
            self._pubsub = _CountingPubSub(self._redis.connection_pool)

    async def subscribe(self, channel: str) -> None:
        """``SUBSCRIBE`` to ``channel`` once, and return when Redis confirmed it (or after
        ``SUBSCRIBE_CONFIRM_S``)."""
        async with self._lock:
            if channel not in self._subscribed_to:
                self._ensure_redis()
                self._ensure_receiver()
                self._confirmations[channel] = asyncio.get_running_loop().create_future()
                assert self._pubsub is not None
                await self._pubsub.subscribe(channel)
                self._subscribed_to.add(channel)
        confirmed = self._confirmations.get(channel)
        if confirmed is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(confirmed), SUBSCRIBE_CONFIRM_S)
        except TimeoutError:
            logger.warning("channel layer: SUBSCRIBE %s not confirmed in %.0f s", channel, SUBSCRIBE_CONFIRM_S)

    async def _do_receiving(self) -> None:
        delay = RETRY_FIRST_S
        while True:
            try:
                if not (self._pubsub and self._pubsub.subscribed):
                    await asyncio.sleep(RECEIVE_POLL_S / 10)
                    continue
                message = await self._pubsub.get_message(ignore_subscribe_messages=False, timeout=RECEIVE_POLL_S)
            except REDIS_ERRORS as exc:
                if self._lost_at is None:
                    self._lost_at = time.monotonic()
                    logger.warning("channel layer: Redis unreachable (%s); waiting for it", exc)
                await asyncio.sleep(delay)
                delay = min(RETRY_MAX_S, delay * 2)
                continue
            delay = RETRY_FIRST_S
            self._note_reconnects()
            if message is not None:
                self._handle(message)

    def _note_reconnects(self) -> None:
        """After a read: when the subscriber connection reconnected since the last read,
        tell every local channel."""
        assert self._pubsub is not None
        connects = self._pubsub.connects
        if connects <= self._connects_seen:
            return
        self._connects_seen = connects
        down_s = 0.0 if self._lost_at is None else time.monotonic() - self._lost_at
        self._lost_at = None
        logger.warning("channel layer: Redis connection back after %.1f s; consumers resync", down_s)
        self.channel_layer.reconnected()

    def _handle(self, message: dict[str, Any]) -> None:
        name = message["channel"]
        if isinstance(name, bytes):
            name = name.decode()
        kind = message["type"]
        if kind == "subscribe":
            confirmed = self._confirmations.pop(name, None)
            if confirmed is not None and not confirmed.done():
                confirmed.set_result(None)
        elif kind == "message":
            layer = self.channel_layer
            if name in layer.channels:
                layer.put(name, message["data"])
            else:
                for channel in layer.groups.get(name, ()):
                    layer.put(channel, message["data"])


def _pool(host: dict[str, Any]) -> Any:
    """The publishing pool of ``host``: a ``BlockingConnectionPool`` for an ``address``
    (channels_redis/utils.py ``create_pool`` makes a plain ``ConnectionPool``, which raises
    ``MaxConnectionsError`` when all are in use); sentinel hosts keep the stock pool."""
    if "address" not in host:
        return create_pool(host)
    options = dict(host)
    address = options.pop("address")
    options.setdefault("max_connections", POOL_MAX_CONNECTIONS)
    options.setdefault("timeout", POOL_WAIT_S)
    return BlockingConnectionPool.from_url(address, **options)


def _blocking_pool(host: dict[str, Any]) -> redis.ConnectionPool:
    """The synchronous publishing pool of ``host`` (:meth:`ResilientPubSubChannelLayer.group_send_blocking`),
    with send timeouts and one retry: a ``BlockingConnectionPool`` for an ``address``, redis-py's
    ``SentinelConnectionPool`` for a Sentinel host (``sentinels`` and ``master_name``, as
    channels_redis/utils.py ``create_pool`` reads them), whose connections ask the Sentinels
    for the primary each time they connect (redis/sentinel.py ``SentinelManagedConnection``).

    Raises ``ValueError`` for a host that is neither."""
    options = dict(host)
    options.setdefault("socket_timeout", SEND_TIMEOUT_S)
    options.setdefault("socket_connect_timeout", SEND_TIMEOUT_S)
    options.setdefault("health_check_interval", HEALTH_CHECK_S)
    # A pooled connection that died with a Redis restart (or a failover) fails once; the retry
    # reconnects. A timeout is not retried: a Redis that does not answer holds a sender
    # SEND_TIMEOUT_S at most.
    options.setdefault("retry_on_error", [RedisConnectionError])
    options.setdefault("retry", SyncRetry(ExponentialBackoff(cap=0.5, base=0.05), SEND_RETRIES))
    if "master_name" in options:
        master_name = options.pop("master_name")
        sentinels = Sentinel(options.pop("sentinels"), sentinel_kwargs=options.pop("sentinel_kwargs", None))  # type: ignore[no-untyped-call]
        pool: redis.ConnectionPool = SentinelConnectionPool(master_name, sentinels, **options)  # type: ignore[no-untyped-call]
        return pool
    if "address" not in options:
        raise ValueError(f"a channel layer host needs an 'address' or 'sentinels' and 'master_name': {sorted(host)}")
    address = options.pop("address")
    options.setdefault("max_connections", POOL_MAX_CONNECTIONS)
    options.setdefault("timeout", POOL_WAIT_S)
    return redis.BlockingConnectionPool.from_url(address, **options)
