"""Where Redis is, for its three users: the channel layer, the Celery broker and the progress store.

One Redis (``REDIS_URL``, the default) or a highly available one behind Redis Sentinel
(``REDIS_SENTINELS``). With Sentinel every process asks the Sentinels for the current primary
of ``REDIS_SENTINEL_MASTER`` and asks again after a failover; each user is configured through
its own library's Sentinel support, so no connection code of ours sits in between:

- **channel layer**: channels-redis' host dicts with ``sentinels`` and ``master_name``
  (channels_redis/utils.py ``create_pool``: ``SentinelConnectionPool(master_name,
  Sentinel(sentinels, sentinel_kwargs=...), **host)``), and the layer's blocking sends the
  synchronous pool of redis-py (redis/sentinel.py ``SentinelConnectionPool``);
- **Celery broker**: kombu's ``sentinel://host:port;sentinel://host:port/db`` URL with
  ``master_name`` in the transport options (kombu/transport/redis.py ``SentinelChannel``);
- **progress store**: Django's ``RedisCache`` with redis-py's ``SentinelConnectionPool`` as its
  ``pool_class`` (django/core/cache/backends/redis.py ``_get_connection_pool``:
  ``self._pool_class.from_url(server, **options)``); the URL's host and port are not used, the
  pool's connections ask the Sentinels (redis/sentinel.py ``SentinelManagedConnection.connect``).

With Sentinel, ``REDIS_URL`` still gives the database number and the password of the primary
(``redis://:password@any-host/3``); its host and port are not used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote, unquote, urlsplit

import redis
from redis.sentinel import Sentinel

#: Sentinel's default port (redis.io "Redis Sentinel": port 26379).
SENTINEL_DEFAULT_PORT: Final = 26379
#: Default name of the monitored primary (the ``sentinel monitor <name>`` of the Sentinels).
DEFAULT_MASTER_NAME: Final = "mymaster"
#: Seconds to wait for a Sentinel's answer before asking the next one.
SENTINEL_SOCKET_TIMEOUT_S: Final = 2.0


def parse_sentinels(raw: str) -> list[tuple[str, int]]:
    """``"host:port,host:port"`` (port optional, default 26379; IPv6 as ``[::1]:26379``) →
    ``[(host, port), ...]``. Raises ``ValueError`` naming the entry that is not ``host[:port]``."""
    sentinels = []
    for entry in (part.strip() for part in raw.split(",")):
        if not entry:
            continue
        parts = urlsplit(f"//{entry}")
        try:
            port = parts.port or SENTINEL_DEFAULT_PORT
        except ValueError as exc:
            raise ValueError(f"REDIS_SENTINELS entry {entry!r} has no valid port: {exc}") from None
        if not parts.hostname or parts.path or parts.username or parts.password:
            raise ValueError(f"REDIS_SENTINELS entry {entry!r} is not host:port")
        sentinels.append((parts.hostname, port))
    if not sentinels:
        raise ValueError("REDIS_SENTINELS names no Sentinel (expected host:port,host:port)")
    return sentinels


@dataclass(frozen=True)
class RedisConfig:
    """Where Redis is (module docstring). ``url`` is ``REDIS_URL``; ``sentinels`` the
    ``(host, port)`` of each Sentinel, empty for a single Redis; ``master_name`` the
    monitored primary's name; ``sentinel_password`` the Sentinels' own password (their
    ``requirepass``), if any."""

    url: str
    sentinels: list[tuple[str, int]] = field(default_factory=list)
    master_name: str = DEFAULT_MASTER_NAME
    sentinel_password: str = ""

    @property
    def uses_sentinel(self) -> bool:
        """True when the primary is found through Sentinels."""
        return bool(self.sentinels)

    @property
    def db(self) -> int:
        """The database number of ``url`` (0 when it names none)."""
        path = urlsplit(self.url).path.strip("/")
        return int(path) if path.isdigit() else 0

    @property
    def password(self) -> str | None:
        """The primary's password from ``url``, or None."""
        password = urlsplit(self.url).password
        return unquote(password) if password else None

    def describe(self) -> str:
        """Where Redis is, for logs and start-up banners (no password)."""
        if not self.uses_sentinel:
            parts = urlsplit(self.url)
            return f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}/{self.db}"
        hosts = ",".join(f"{host}:{port}" for host, port in self.sentinels)
        return f"the primary {self.master_name!r} of Sentinels {hosts} (db {self.db})"

    def _sentinel_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"socket_timeout": SENTINEL_SOCKET_TIMEOUT_S}
        if self.sentinel_password:
            kwargs["password"] = self.sentinel_password
        return kwargs

    def channel_layer_hosts(self) -> list[Any]:
        """The ``hosts`` of ``CHANNEL_LAYERS`` (channels-redis): the URL, or one Sentinel host
        dict (``sentinels``, ``master_name``, ``sentinel_kwargs``, ``db``, ``password``)."""
        if not self.uses_sentinel:
            return [self.url]
        host: dict[str, Any] = {
            "sentinels": list(self.sentinels),
            "master_name": self.master_name,
            "sentinel_kwargs": self._sentinel_kwargs(),
            "db": self.db,
        }
        if self.password:
            host["password"] = self.password
        return [host]

    def celery_broker_url(self) -> str:
        """Celery's ``broker_url``: the URL, or kombu's ``sentinel://`` list (each Sentinel,
        ``;``-separated, with the primary's password; kombu takes the database from the first)."""
        if not self.uses_sentinel:
            return self.url
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        urls = [f"sentinel://{auth}{_netloc(host, port)}" for host, port in self.sentinels]
        urls[0] += f"/{self.db}"
        return ";".join(urls)

    def celery_transport_options(self) -> dict[str, Any]:
        """What Sentinel adds to Celery's ``broker_transport_options`` (empty for one Redis)."""
        if not self.uses_sentinel:
            return {}
        return {"master_name": self.master_name, "sentinel_kwargs": self._sentinel_kwargs()}

    def cache_location(self) -> str:
        """``LOCATION`` of the progress cache (Django's ``RedisCache``)."""
        return self.url

    def cache_options(self) -> dict[str, Any]:
        """What Sentinel adds to the progress cache's ``OPTIONS``: redis-py's
        ``SentinelConnectionPool`` as Django's ``pool_class``, with its ``service_name`` and
        ``sentinel_manager`` (empty for one Redis)."""
        if not self.uses_sentinel:
            return {}
        return {
            "pool_class": "redis.sentinel.SentinelConnectionPool",
            "service_name": self.master_name,
            "sentinel_manager": _sentinel(self.sentinels, self._sentinel_kwargs()),
        }

    def answers(self, timeout: float = 1.0) -> bool:
        """True when the primary answers PING within ``timeout`` seconds (through the
        Sentinels when they are configured)."""
        try:
            client = self.client(socket_connect_timeout=timeout, socket_timeout=timeout)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except (redis.RedisError, OSError, ValueError):
            return False

    def client(self, **options: Any) -> redis.Redis:
        """A synchronous redis-py client of the primary (health checks, tools); ``options``
        are connection options (``socket_timeout``, ...). The caller closes it."""
        if not self.uses_sentinel:
            return redis.Redis.from_url(self.url, **options)
        sentinel = _sentinel(self.sentinels, self._sentinel_kwargs() | options)
        client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]  # redis/sentinel.py
            self.master_name, db=self.db, password=self.password, **options
        )
        return client


def _sentinel(sentinels: list[tuple[str, int]], sentinel_kwargs: dict[str, Any]) -> Sentinel:
    """redis-py's ``Sentinel`` manager (untyped in redis/sentinel.py, hence this one place)."""
    return Sentinel(sentinels, sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call]


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
