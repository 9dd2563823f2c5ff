"""Fixtures of the multi-host tests: three hosts ``a``, ``b``, ``c`` as network namespaces, a
Redis primary, replica and three Sentinels in ``c``, a PostgreSQL in ``c``.

Mark each test module ``pytestmark = pytest.mark.multihost``. Without root or iproute2 the
fixtures fail (:class:`~tests.multihost.netns.MultihostUnavailable`), they never skip.

Environment:

* ``MULTIHOST_PREFIX`` (default ``jm``): the first letters of every namespace and link name;
  ``MULTIHOST_SUBNET`` (default ``10.231.9.0/24``): the hosts' subnet. Two sessions that run at
  once need different ones (a second session of a prefix in use fails at once).
* ``MULTIHOST_KEEP_LOGS`` (non-empty): keep the logs folder after the session (its path is printed).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.multihost.apphosts import AppCluster, build_apps
from tests.multihost.cluster import PrivatePostgres, SentinelCluster
from tests.multihost.netns import DEFAULT_PREFIX, DEFAULT_SUBNET, Network

HOSTS = ("a", "b", "c")


@pytest.fixture(scope="package")
def network() -> Iterator[Network]:
    """Hosts ``a``, ``b``, ``c`` (``network["a"].address`` is the subnet's ``.2``, and so on), for
    the whole package; at the end every process in them is killed and everything removed."""
    net = Network(
        prefix=os.environ.get("MULTIHOST_PREFIX", DEFAULT_PREFIX),
        subnet=os.environ.get("MULTIHOST_SUBNET", DEFAULT_SUBNET),
        hosts=HOSTS,
        keep_workdir=bool(os.environ.get("MULTIHOST_KEEP_LOGS")),
    )
    with net:
        yield net


@pytest.fixture(scope="package")
def redis_cluster_started(network: Network) -> Iterator[SentinelCluster]:
    """The package's one Sentinel cluster in host ``c`` (use :func:`redis_cluster`)."""
    with SentinelCluster(network["c"], master_name="mymaster") as cluster:
        yield cluster


@pytest.fixture
def redis_cluster(redis_cluster_started: SentinelCluster) -> SentinelCluster:
    """The Sentinel cluster in host ``c`` (master name ``mymaster``, primary and replica on ports
    6379 and 6380, Sentinels on 26379-26381), repaired before the test: whatever an earlier test
    killed runs again and the cluster is healthy, though the primary may be either server."""
    redis_cluster_started.repair()
    return redis_cluster_started


@pytest.fixture(scope="package")
def postgres(network: Network) -> Iterator[PrivatePostgres]:
    """A PostgreSQL in host ``c``, port 5432, database ``multihost``: ``postgres.url`` is
    ``postgres://postgres@<c's address>:5432/multihost``, trusted from every host."""
    with PrivatePostgres(network["c"]) as server:
        yield server


@pytest.fixture(scope="package")
def apps_started(
    network: Network, postgres: PrivatePostgres, redis_cluster_started: SentinelCluster
) -> Iterator[AppCluster]:
    """The application on hosts ``a`` and ``b`` (tests/multihost/apphosts.py), for the whole
    package; its processes are killed with the network at the end."""
    redis_cluster_started.repair()
    apps = build_apps(network, postgres, redis_cluster_started)
    yield apps
    for app_host in apps.hosts.values():
        app_host.host.kill_all()
