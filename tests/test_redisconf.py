"""Where Redis is (proj/redisconf.py): one URL, or Sentinels, for each of Redis' three users.

The real Sentinels, a failover and every process reconnecting: tests/multihost."""

from __future__ import annotations

import pytest
from kombu.connection import Connection
from redis.sentinel import Sentinel, SentinelConnectionPool

from proj.redisconf import RedisConfig, parse_sentinels
from realtime.layers import _blocking_pool
from tests.test_cli_errors import manage

SENTINELS = [("10.0.0.5", 26379), ("10.0.0.6", 26380)]


def test_sentinels_parse_from_a_comma_separated_list_with_the_default_port():
    assert parse_sentinels("10.0.0.5, 10.0.0.6:26380,[::1]:26381,") == [
        ("10.0.0.5", 26379),
        ("10.0.0.6", 26380),
        ("::1", 26381),
    ]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "names no Sentinel"),
        ("10.0.0.5:port", "has no valid port"),
        ("redis://10.0.0.5:26379", "is not host:port"),
        ("10.0.0.5:26379/0", "is not host:port"),
    ],
)
def test_a_bad_sentinel_list_names_what_is_wrong(raw, message):
    with pytest.raises(ValueError, match=message):
        parse_sentinels(raw)


def test_one_redis_is_the_url_for_every_user():
    config = RedisConfig(url="redis://:secret@redis.internal:6380/4")
    assert not config.uses_sentinel
    assert config.channel_layer_hosts() == ["redis://:secret@redis.internal:6380/4"]
    assert config.celery_broker_url() == "redis://:secret@redis.internal:6380/4"
    assert config.celery_transport_options() == {}
    assert config.cache_location() == "redis://:secret@redis.internal:6380/4"
    assert config.cache_options() == {}
    assert config.describe() == "redis://redis.internal:6380/4"


def test_with_sentinels_the_url_gives_only_the_database_and_the_password():
    config = RedisConfig(url="redis://:s%40cret@ignored/3", sentinels=SENTINELS, master_name="jobs")
    assert config.db == 3
    assert config.password == "s@cret"
    [host] = config.channel_layer_hosts()
    assert host["sentinels"] == SENTINELS
    assert host["master_name"] == "jobs"
    assert host["db"] == 3
    assert host["password"] == "s@cret"
    assert config.describe() == "the primary 'jobs' of Sentinels 10.0.0.5:26379,10.0.0.6:26380 (db 3)"
    assert "cret" not in config.describe()


def test_the_broker_url_is_kombus_sentinel_list_with_the_master_name_in_the_transport_options():
    config = RedisConfig(url="redis://:pw@ignored/3", sentinels=SENTINELS, master_name="jobs", sentinel_password="sp")
    url = config.celery_broker_url()
    assert url == "sentinel://:pw@10.0.0.5:26379/3;sentinel://:pw@10.0.0.6:26380"
    options = config.celery_transport_options()
    assert options["master_name"] == "jobs"
    assert options["sentinel_kwargs"]["password"] == "sp"
    # kombu reads it as a Sentinel transport with both Sentinels, database 3 (kombu/transport/redis.py
    # SentinelChannel._sentinel_managed_pool reads connection.client.alt).
    connection = Connection(url, transport_options=options)
    assert connection.transport_cls == "sentinel"
    assert connection.virtual_host == "3"
    assert len(connection.alt) == 2


def test_the_progress_cache_gets_redis_pys_sentinel_pool_for_the_master():
    config = RedisConfig(url="redis://ignored/2", sentinels=SENTINELS, master_name="jobs")
    options = config.cache_options()
    assert options["pool_class"] == "redis.sentinel.SentinelConnectionPool"
    assert options["service_name"] == "jobs"
    manager = options["sentinel_manager"]
    assert isinstance(manager, Sentinel)
    assert [
        (c.connection_pool.connection_kwargs["host"], c.connection_pool.connection_kwargs["port"])
        for c in manager.sentinels
    ] == SENTINELS
    # What Django's RedisCache does with them (django/core/cache/backends/redis.py _get_connection_pool).
    pool = SentinelConnectionPool.from_url(
        config.cache_location(), **{k: v for k, v in options.items() if k != "pool_class"}
    )
    assert pool.is_master
    assert pool.connection_kwargs["db"] == 2


def test_the_layers_blocking_send_has_a_sentinel_pool_for_a_sentinel_host():
    config = RedisConfig(url="redis://ignored/5", sentinels=SENTINELS, master_name="jobs")
    [host] = config.channel_layer_hosts()
    pool = _blocking_pool(host)
    assert isinstance(pool, SentinelConnectionPool)
    assert pool.service_name == "jobs"
    assert pool.connection_kwargs["db"] == 5
    assert pool.connection_kwargs["socket_timeout"] == 5.0


def test_a_host_that_is_neither_an_address_nor_a_sentinel_is_refused():
    with pytest.raises(ValueError, match="needs an 'address' or 'sentinels' and 'master_name'"):
        _blocking_pool({"host": "10.0.0.5", "port": 6379})


def test_a_bad_sentinel_list_is_one_line_with_its_reason(tmp_path):
    result = manage(tmp_path, "check", DJANGO_DEBUG="1", REDIS_SENTINELS="10.0.0.5:x")
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert "REDIS_SENTINELS entry '10.0.0.5:x' has no valid port" in line, line
