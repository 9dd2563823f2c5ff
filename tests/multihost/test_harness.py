"""The multi-host harness itself: hosts reach each other over the bridge and only there, a host
dies or drops off the network, Sentinel clients in another host follow a failover, PostgreSQL
answers from another host."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from proj.redisconf import parse_sentinels
from tests.multihost.cluster import PrivatePostgres, SentinelCluster
from tests.multihost.netns import HostCommandFailed, MultihostUnavailable, Network
from tests.waiting import wait_for

pytestmark = pytest.mark.multihost

#: Seconds within which the Sentinels must have promoted the replica (down-after 1 s, then the
#: vote and the promotion; measured about 2-3 s).
FAILOVER_BOUND_S = 10.0

#: A server that answers each connection with "<peer address> <first line received>".
ECHO_SERVER = """
import socket, sys
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((sys.argv[1], int(sys.argv[2])))
server.listen()
while True:
    conn, peer = server.accept()
    line = conn.makefile("rb").readline()
    conn.sendall(peer[0].encode() + b" " + line)
    conn.close()
"""

#: Connect to argv[1]:argv[2], send "ping", print the reply, or the exception's class name.
ECHO_CLIENT = """
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])) as conn:
        conn.sendall(b"ping\\n")
        print(conn.makefile("rb").readline().decode().strip())
except OSError as exc:
    print(type(exc).__name__)
"""

#: In a host: a Sentinel client writes argv[4] = argv[5] through master_for, waits until argv[3]
#: replicas acknowledged it (WAIT), reads it back and every key of argv[6:]; prints JSON
#: {"master": [host, port], "read": ..., "others": {...}}.
SENTINEL_CLIENT = """
import json, sys
from redis.sentinel import Sentinel
sentinels = [(a.split(":")[0], int(a.split(":")[1])) for a in sys.argv[1].split(",")]
sentinel = Sentinel(sentinels, socket_timeout=1.0)
master = sentinel.master_for(sys.argv[2], socket_timeout=1.0, decode_responses=True)
replicas, key, value, others = int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6:]
master.set(key, value)
if replicas:
    assert master.wait(replicas, 500) == replicas, "the replicas did not acknowledge the write"
print(json.dumps({
    "master": list(sentinel.discover_master(sys.argv[2])),
    "read": master.get(key),
    "others": {other: master.get(other) for other in others},
}))
"""


def sentinel_write(
    network: Network, cluster: SentinelCluster, replicas: int, key: str, value: str, *others: str
) -> dict:
    """Run :data:`SENTINEL_CLIENT` in host ``a`` (write ``key``, wait for ``replicas`` replicas'
    acknowledgement, read ``key`` and ``others``); its JSON report."""
    env = cluster.app_env()
    args = (env["REDIS_SENTINELS"], env["REDIS_SENTINEL_MASTER"], str(replicas), key, value, *others)
    return json.loads(network["a"].python(SENTINEL_CLIENT, *args))


def test_tcp_from_a_reaches_a_server_in_b_over_the_bridge_only(network: Network) -> None:
    a, b = network["a"], network["b"]
    server = b.start("echo", [sys.executable, "-c", ECHO_SERVER, b.address, "7000"])
    try:
        # b saw the connection come from a's address: it crossed the bridge from a's namespace.
        assert _wait_echo(network, b.address, 7000) == f"{a.address} ping"
        # a's loopback is a's own: nothing listens on port 7000 there.
        assert a.python(ECHO_CLIENT, "127.0.0.1", "7000", "1").strip() == "ConnectionRefusedError"
        # The test process, in the root namespace, reaches b too, from the bridge's address.
        with socket.create_connection((b.address, 7000), timeout=2) as conn:
            conn.sendall(b"ping\n")
            assert conn.makefile("rb").readline() == f"{network.gateway} ping\n".encode()
    finally:
        b.kill(server)
    assert server.returncode == -9


def test_a_disconnected_host_is_silent_until_it_reconnects(network: Network) -> None:
    a, b = network["a"], network["b"]
    server = b.start("echo-partition", [sys.executable, "-c", ECHO_SERVER, b.address, "7001"])
    try:
        assert _wait_echo(network, b.address, 7001) == f"{a.address} ping"
        b.disconnect()
        try:
            # Dropped, not refused: the connection attempt times out.
            assert a.python(ECHO_CLIENT, b.address, "7001", "1").strip() in {"TimeoutError", "timeout"}
        finally:
            b.reconnect()
        assert _wait_echo(network, b.address, 7001) == f"{a.address} ping"
    finally:
        b.kill(server)


def test_kill_all_kills_every_process_of_the_host(network: Network) -> None:
    b = network["b"]
    started = b.start("sleeper", ["sleep", "600"])
    # A process that leaves the group and session it was started in (as daemons do).
    b.run(["sh", "-c", "setsid sleep 600 >/dev/null 2>&1 < /dev/null &"])
    assert len(b.pids()) == 2
    b.kill_all()
    assert b.pids() == []
    assert started.returncode == -9


def test_a_second_session_of_a_live_prefix_or_subnet_fails_clearly(network: Network) -> None:
    with pytest.raises(MultihostUnavailable, match="in use by another live session"):
        Network(prefix=network.prefix, subnet=str(network.subnet)).start()
    with pytest.raises(MultihostUnavailable, match=f"subnet {network.subnet} is in use"):
        Network(prefix=network.prefix + "x", subnet=str(network.subnet)).start()
    assert len(network["a"].python("print('still up')")) > 0


def test_not_root_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(MultihostUnavailable, match="need root and iproute2"):
        Network(prefix="jq", subnet="10.231.250.0/24").start()


def test_a_sentinel_client_in_a_writes_and_reads_the_primary_in_c(
    network: Network, redis_cluster: SentinelCluster
) -> None:
    assert parse_sentinels(redis_cluster.app_env()["REDIS_SENTINELS"]) == redis_cluster.sentinel_addresses()
    report = sentinel_write(network, redis_cluster, 1, "harness:hello", "from a")
    assert report["read"] == "from a"
    assert tuple(report["master"]) == redis_cluster.master_address()
    assert redis_cluster.master_address()[0] == network["c"].address
    # The write reached the primary and its replica (WAIT 1 in the client), read here directly.
    primary = redis_cluster.primary()
    (replica,) = [n for n in redis_cluster.nodes if n is not primary]
    assert replica.command("GET", "harness:hello") == "from a"


def test_killing_the_primary_promotes_the_replica_and_clients_follow(
    network: Network, redis_cluster: SentinelCluster
) -> None:
    before = sentinel_write(network, redis_cluster, 1, "harness:before", "1")
    old = redis_cluster.primary()
    (replica,) = [n for n in redis_cluster.nodes if n is not old]

    killed = redis_cluster.kill_primary()
    new_address, seconds = redis_cluster.wait_for_failover(timeout=30)
    print(f"\nfailover: primary {old.address} SIGKILLed, {new_address} promoted after {seconds:.2f} s")

    assert killed is old
    assert tuple(before["master"]) == old.address
    assert new_address == replica.address
    assert seconds < FAILOVER_BOUND_S
    after = sentinel_write(network, redis_cluster, 0, "harness:after", "2", "harness:before")
    assert tuple(after["master"]) == replica.address
    assert after["read"] == "2"
    assert after["others"] == {"harness:before": "1"}  # acknowledged by the replica before the kill

    redis_cluster.restart(killed)
    redis_cluster.wait_healthy()
    info = killed.info()
    assert (info["role"], info["master_host"], info["master_port"]) == ("slave", *replica.address)
    assert killed.command("GET", "harness:after") == "2"


def test_postgres_in_c_answers_from_a(network: Network, postgres: PrivatePostgres) -> None:
    code = (
        "import psycopg, sys\n"
        "with psycopg.connect(sys.argv[1], connect_timeout=5) as conn:\n"
        "    print(conn.execute('select 1, inet_client_addr(), current_database()').fetchone())\n"
    )
    assert postgres.url == f"postgres://postgres@{network['c'].address}:5432/multihost"
    out = network["a"].python(code, postgres.url).strip()
    assert out == f"(1, IPv4Address('{network['a'].address}'), 'multihost')"


def test_a_failing_command_in_a_host_says_what_it_printed(network: Network) -> None:
    with pytest.raises(HostCommandFailed, match="boom"):
        network["a"].python("raise SystemExit('boom')")
    with pytest.raises(subprocess.TimeoutExpired):
        network["a"].run(["sleep", "5"], timeout=0.5)


def _wait_echo(network: Network, address: str, port: int) -> str:
    """Connect from host ``a`` until the echo server at ``address:port`` answers; its reply."""

    def reply() -> str | None:
        out = network["a"].python(ECHO_CLIENT, address, str(port), "2").strip()
        return out if out.endswith("ping") else None

    return str(wait_for(reply, 10, 0.05, desc=f"the echo server at {address}:{port}"))
