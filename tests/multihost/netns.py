"""Several hosts on one machine: Linux network namespaces on a bridge.

A :class:`Network` makes, in the root namespace, a bridge ``<prefix>-br`` holding the subnet's
first address (``.1``, the gateway), and for each host a namespace ``<prefix>-<host>`` whose
``eth0`` is one end of a veth pair (the other end, ``<prefix>-<host>-h``, is a port of the
bridge), with the next address (``.2``, ``.3``, ...), its loopback up and a default route via the
bridge. Hosts reach each other over the bridge (layer 2: no ``ip_forward`` needed, and the harness
changes no sysctl); the test process, in the root namespace, reaches every host too, from ``.1``.

Each :class:`Host` starts long-running processes inside its namespace (``ip netns exec``, through
tests/processes.py), each the leader of a session and process group of its own, stdout and stderr to
``<workdir>/<host>/<name>.log``; it kills one (SIGKILL to its process group), or every process of
the namespace at once (a whole host dies), and cuts or restores its link to the bridge.

Every name starts with the caller's prefix, so that sessions with different prefixes never
collide; :meth:`Network.start` first removes what a crashed earlier session of the same prefix
left (namespaces and their processes, links, temporary folders), and holds a lock so that two
live sessions of one prefix refuse to run at once. Needs root and iproute2; without them, or when
the kernel refuses, :class:`MultihostUnavailable` (never a skip).

(Over ~350 lines: one idea, hosts as namespaces: the network, a host and its processes, which
only make sense together.)
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from tests import processes
from tests.processes import Process
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
#: Prefix and subnet of CI's runs (and of the multi-host tests' defaults).
DEFAULT_PREFIX = "jm"
DEFAULT_SUBNET = "10.231.9.0/24"
DEFAULT_HOSTS = ("a", "b", "c")
#: Longest name of a network interface (IFNAMSIZ - 1).
IFNAME_MAX = 15
#: Port of the connectivity probe that :meth:`Network.start` runs in the first host.
PROBE_PORT = 9
_NAME = re.compile(r"[a-z][a-z0-9]*")

_PROBE_SERVER = """
import socket, sys
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((sys.argv[1], int(sys.argv[2])))
server.listen(16)
while True:
    conn, peer = server.accept()
    conn.sendall(peer[0].encode())
    conn.close()
"""

_PROBE_CLIENT = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])) as conn:
    print(conn.recv(64).decode())
"""


class MultihostUnavailable(RuntimeError):
    """The machine gives no network namespaces (not root, no iproute2, the kernel refuses), the
    subnet is taken, another live session holds the prefix, the hosts cannot reach each other, or a
    server the harness needs (PostgreSQL) is not installed. Multi-host tests fail with it, never skip."""


class HostCommandFailed(RuntimeError):
    """A one-shot command of :meth:`Host.run` exited non-zero; the message holds its output."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``ip *args`` (30 s at most); with ``check``, a non-zero exit raises
    :class:`MultihostUnavailable` naming the command and its stderr."""
    try:
        result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    except FileNotFoundError as exc:
        raise MultihostUnavailable(f"multi-host tests need root and iproute2: `ip` not found ({exc})") from exc
    if check and result.returncode != 0:
        raise MultihostUnavailable(
            f"multi-host tests need root and iproute2: `ip {' '.join(args)}` failed: {result.stderr.strip()}"
        )
    return result


def _ip_json(*args: str) -> list[dict[str, Any]]:
    """``ip -j *args`` parsed (an empty output is an empty list)."""
    out = _ip("-j", *args).stdout.strip()
    return list(json.loads(out)) if out else []


def namespace_pids(namespace: str) -> list[int]:
    """Pids of every (non-zombie) process whose network namespace is ``namespace``; empty when the
    namespace does not exist."""
    result = _ip("netns", "pids", namespace, check=False)
    return [int(word) for word in result.stdout.split()] if result.returncode == 0 else []


def _no_pids(namespace: str) -> bool:
    return not namespace_pids(namespace)


def _kill_pids(pids: Sequence[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def remove_leftovers(prefix: str) -> list[str]:
    """Remove what a session of ``prefix`` left: SIGKILL every process in a namespace
    ``<prefix>-*`` and delete those namespaces, delete every link ``<prefix>-*`` (veths, the
    bridge), remove the temporary folders ``multihost-<prefix>-*``. Returns what it removed
    (``"netns jh-a"``, ``"link jh-br"``, ``"dir /tmp/..."``); callers hold the prefix's lock."""
    removed = []
    mine = f"{prefix}-"
    namespaces = [entry["name"] for entry in _ip_json("netns", "list") if entry["name"].startswith(mine)]
    for namespace in namespaces:
        _kill_pids(namespace_pids(namespace))
        wait_for(functools.partial(_no_pids, namespace), 10, desc=f"the processes of stale {namespace} gone")
    for link in _ip_json("link", "show"):
        if link["ifname"].startswith(mine):
            _ip("link", "del", link["ifname"], check=False)
            removed.append(f"link {link['ifname']}")
    for namespace in namespaces:
        _ip("netns", "del", namespace)
        removed.append(f"netns {namespace}")
    for path in Path(tempfile.gettempdir()).glob(f"multihost-{prefix}-*"):
        shutil.rmtree(path, ignore_errors=True)
        removed.append(f"dir {path}")
    return removed


@dataclass
class HostProcess(Process):
    """A long-running process that :meth:`Host.start` started in a host's namespace
    (a :class:`tests.processes.Process`: ``pid``, ``alive()``, ``send_signal()``, ``kill()``,
    ``log_tail()``), with its ``host`` and the ``argv`` it runs there.

    It leads a session and process group of its own (its pgid is its pid: ``ip netns exec`` and
    ``setpriv`` exec, they do not fork); its stdout and stderr go to ``log_path``.
    """

    host: Host
    argv: tuple[str, ...]

    def wait(self, timeout: float | None = 10.0) -> int:
        """Wait up to ``timeout`` seconds for it to exit; its exit status. Raises
        ``subprocess.TimeoutExpired``."""
        return self.popen.wait(timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Graceful stop: ``sig`` to the process alone, up to ``timeout`` seconds for it to exit,
        then SIGKILL to its process group (also whatever children outlived it); its exit status."""
        if self.alive():
            self.send_signal(sig, group=False)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.wait(timeout)
        self.send_signal(signal.SIGKILL)
        return self.wait(timeout)


class Host:
    """One host of a :class:`Network`: a network namespace with one address.

    ``name`` is the short name (``"a"``), ``namespace`` the namespace's (``"<prefix>-a"``),
    ``address`` its IPv4 address (a dotted string), ``dir`` a folder of its own for logs and data
    (removed with the network), ``processes`` what :meth:`start` started, by name.
    """

    def __init__(self, network: Network, name: str, address: str) -> None:
        self.network = network
        self.name = name
        self.address = address
        self.namespace = f"{network.prefix}-{name}"
        #: The root-namespace end of the host's veth pair, a port of the bridge.
        self.veth = f"{network.prefix}-{name}-h"
        self.processes: dict[str, HostProcess] = {}

    def __repr__(self) -> str:
        return f"Host({self.name!r}, {self.address}, namespace {self.namespace!r})"

    @property
    def dir(self) -> Path:
        """The host's folder, ``<network workdir>/<name>`` (mode 0755)."""
        return self.network.workdir / self.name

    def exec_argv(self, argv: Sequence[str], user: str | None = None) -> list[str]:
        """``argv`` as run inside the namespace (``ip netns exec``), as ``user`` when given
        (``setpriv`` with that user's uid, gid and groups; no fork, no PAM)."""
        as_user = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--"] if user else []
        return ["ip", "netns", "exec", self.namespace, *as_user, *argv]

    def start(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        user: str | None = None,
    ) -> HostProcess:
        """Start the long-running process ``name`` (``argv``) in this host: a new session and
        process group, output appended to ``<dir>/<name>.log``, environment ``env`` (default:
        this process's), working directory ``cwd`` (default: the repository), as ``user`` (default:
        root). Does not wait for it to be ready. Raises ``ValueError`` when a process of that name
        still runs."""
        running = self.processes.get(name)
        if running is not None and running.alive():
            raise ValueError(f"host {self.name}: process {name!r} is still running (pid {running.pid})")
        log_path = self.dir / f"{name}.log"
        command = self.exec_argv(argv, user)
        popen = processes.spawn(command, env=os.environ if env is None else env, log_path=log_path, cwd=cwd or ROOT)
        process = HostProcess(name=name, host=self, argv=tuple(argv), popen=popen, log_path=log_path)
        self.processes[name] = process
        return process

    def run(
        self,
        argv: Sequence[str],
        timeout: float = 60.0,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        user: str | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run a one-shot command in this host and wait (``timeout`` seconds, else
        ``subprocess.TimeoutExpired``); its stdout and stderr as text. With ``check``, a non-zero
        exit raises :class:`HostCommandFailed` holding both."""
        result = subprocess.run(
            self.exec_argv(argv, user),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=dict(os.environ if env is None else env),
            cwd=cwd or ROOT,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise HostCommandFailed(
                f"host {self.name}: {' '.join(argv)} exited {result.returncode}\n"
                f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
            )
        return result

    def python(self, code: str, *args: str, timeout: float = 60.0, env: Mapping[str, str] | None = None) -> str:
        """Run ``code`` with this venv's Python in this host (``python -c code *args``, from the
        repository, so ``tests.*`` imports); its stdout. Raises :class:`HostCommandFailed` on a
        non-zero exit (an exception), ``subprocess.TimeoutExpired`` after ``timeout`` seconds."""
        return self.run([sys.executable, "-c", code, *args], timeout=timeout, env=env).stdout

    def kill(self, process: HostProcess | str) -> int:
        """SIGKILL the process group of ``process`` (or of the process of that name) and reap it;
        its exit status."""
        return (self.processes[process] if isinstance(process, str) else process).kill()

    def pids(self) -> list[int]:
        """Pids of every process in this host's namespace, whoever started it."""
        return namespace_pids(self.namespace)

    def kill_all(self, timeout: float = 10.0) -> None:
        """A whole host dies: SIGKILL every process group started here and every other process
        in the namespace, reap them, and wait (``timeout`` seconds) until none is left. Its
        address still answers (connection refused); :meth:`disconnect` makes it silent too."""
        for process in self.processes.values():
            if process.alive():
                process.send_signal(signal.SIGKILL)
        _kill_pids(self.pids())
        for process in self.processes.values():
            process.wait(timeout)
        wait_for(lambda: not self.pids(), timeout, desc=f"every process of host {self.name} gone")

    def disconnect(self) -> None:
        """Cut the host off the bridge (its veth port down): packets to and from it are dropped,
        so connections time out instead of being refused, as with a host that lost power or a
        network partition. Its processes keep running."""
        _ip("link", "set", self.veth, "down")

    def reconnect(self) -> None:
        """Put the host back on the bridge (undoes :meth:`disconnect`)."""
        _ip("link", "set", self.veth, "up")

    def log_tail(self, name: str, lines: int = 40) -> str:
        """The last ``lines`` lines of the log of process ``name`` (empty when it has none)."""
        return processes.log_tail(self.dir / f"{name}.log", lines)


class Network:
    """A bridge and ``hosts`` network namespaces on it; see the module's docstring.

    ``prefix``: 1-8 lowercase letters or digits, starting with a letter, that every name starts
    with (``<prefix>-br``, ``<prefix>-<host>``); ``subnet``: an IPv4 network (``"10.231.9.0/24"``)
    that no interface of the machine uses; ``hosts``: short host names (lowercase letters and
    digits), addressed in order from the subnet's second address. ``keep_workdir`` leaves the logs
    folder after :meth:`stop` (its path is printed); ``verify`` makes :meth:`start` check that
    every host reaches the first over TCP. Use it as a context manager, or call :meth:`start` and
    :meth:`stop`. Raises ``ValueError`` for bad names or a subnet too small.
    """

    def __init__(
        self,
        prefix: str = DEFAULT_PREFIX,
        subnet: str = DEFAULT_SUBNET,
        hosts: Sequence[str] = DEFAULT_HOSTS,
        keep_workdir: bool = False,
        verify: bool = True,
    ) -> None:
        if not _NAME.fullmatch(prefix) or len(prefix) > 8:
            raise ValueError(f"prefix {prefix!r}: 1-8 lowercase letters or digits, starting with a letter")
        for name in hosts:
            if not _NAME.fullmatch(name) or len(f"{prefix}-{name}-h") > IFNAME_MAX:
                raise ValueError(f"host name {name!r}: lowercase letters or digits, and {prefix}-{name}-h ≤ 15 chars")
        if len(set(hosts)) != len(hosts):
            raise ValueError(f"host names repeat: {list(hosts)}")
        self.prefix = prefix
        self.subnet = ipaddress.IPv4Network(subnet)
        addresses = list(self.subnet.hosts())
        if len(addresses) < len(hosts) + 1:
            raise ValueError(f"subnet {subnet} is too small for {len(hosts)} hosts and the bridge")
        self.bridge = f"{prefix}-br"
        #: The bridge's address in the root namespace: the hosts' default route, and the source
        #: address of the test process's connections to them.
        self.gateway = str(addresses[0])
        self.hosts: dict[str, Host] = {
            name: Host(self, name, str(address)) for name, address in zip(hosts, addresses[1:], strict=False)
        }
        self.keep_workdir = keep_workdir
        self.verify = verify
        self._workdir: Path | None = None
        self._lock: IO[bytes] | None = None

    def __getitem__(self, name: str) -> Host:
        """The host called ``name``; ``KeyError`` when there is none."""
        return self.hosts[name]

    def __repr__(self) -> str:
        return f"Network({self.prefix!r}, {self.subnet}, hosts {list(self.hosts)})"

    @property
    def workdir(self) -> Path:
        """The temporary folder of logs and data, ``/tmp/multihost-<prefix>-*`` (mode 0755, so
        that servers run as another user can reach their folders). ``RuntimeError`` before
        :meth:`start`."""
        if self._workdir is None:
            raise RuntimeError("the network is not started")
        return self._workdir

    @property
    def lock_path(self) -> Path:
        """The prefix's lock file (held from :meth:`start` to :meth:`stop`)."""
        return Path(tempfile.gettempdir()) / f"multihost-{self.prefix}.lock"

    def __enter__(self) -> Network:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> Network:
        """Remove the prefix's leftovers, then make the bridge and the hosts, and (``verify``)
        check that they reach each other. Returns ``self``. Raises :class:`MultihostUnavailable`
        (not root, no ``ip``, the kernel refuses, the subnet is in use, the prefix is held by a
        live session, no connectivity); what it made by then is removed again."""
        if os.geteuid() != 0:
            raise MultihostUnavailable(f"multi-host tests need root and iproute2: running as uid {os.geteuid()}")
        if shutil.which("ip") is None:
            raise MultihostUnavailable("multi-host tests need root and iproute2: `ip` is not on PATH")
        self._acquire_lock()
        try:
            remove_leftovers(self.prefix)
            self._check_subnet_free()
            self._workdir = Path(tempfile.mkdtemp(prefix=f"multihost-{self.prefix}-"))
            self._workdir.chmod(0o755)
            self._create()
            if self.verify:
                self.check_connectivity()
        except BaseException:
            with contextlib.suppress(RuntimeError):  # the first error is the one to see
                self.stop()
            raise
        return self

    def _acquire_lock(self) -> None:
        lock = open(self.lock_path, "ab")  # noqa: SIM115 - held until stop()
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            lock.close()
            raise MultihostUnavailable(
                f"prefix {self.prefix!r} is in use by another live session ({self.lock_path} is locked); "
                "give this one another prefix and subnet (MULTIHOST_PREFIX, MULTIHOST_SUBNET)"
            ) from exc
        self._lock = lock

    def _check_subnet_free(self) -> None:
        for link in _ip_json("-4", "addr", "show"):
            for info in link.get("addr_info", []):
                theirs = ipaddress.IPv4Network(f"{info['local']}/{info['prefixlen']}", strict=False)
                if theirs.overlaps(self.subnet):
                    raise MultihostUnavailable(
                        f"subnet {self.subnet} is in use on this machine ({link['ifname']} has "
                        f"{info['local']}/{info['prefixlen']}); choose another (MULTIHOST_SUBNET)"
                    )

    def _create(self) -> None:
        prefixlen = self.subnet.prefixlen
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.gateway}/{prefixlen}", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for host in self.hosts.values():
            host.dir.mkdir(mode=0o755)
            host.dir.chmod(0o755)
            _ip("netns", "add", host.namespace)
            _ip("link", "add", host.veth, "type", "veth", "peer", "name", "eth0", "netns", host.namespace)
            _ip("link", "set", host.veth, "master", self.bridge)
            _ip("link", "set", host.veth, "up")
            _ip("-n", host.namespace, "link", "set", "lo", "up")
            _ip("-n", host.namespace, "addr", "add", f"{host.address}/{prefixlen}", "dev", "eth0")
            _ip("-n", host.namespace, "link", "set", "eth0", "up")
            _ip("-n", host.namespace, "route", "add", "default", "via", self.gateway)

    def check_connectivity(self, timeout: float = 10.0) -> None:
        """TCP from the root namespace and from every other host to a probe server in the first
        host, which answers each connection with the address it came from; each must be the
        sender's own. Raises :class:`MultihostUnavailable` when a connection fails (on a machine
        whose firewall drops forwarded packets, bridged traffic is dropped too while
        ``br_netfilter`` is loaded: ``sysctl net.bridge.bridge-nf-call-iptables=0``, or accept
        the bridge in the FORWARD chain)."""
        first, *others = self.hosts.values()
        probe = first.start("connectivity-probe", [sys.executable, "-c", _PROBE_SERVER, first.address, str(PROBE_PORT)])
        try:

            def root_reaches() -> str | None:
                if not probe.alive():
                    raise MultihostUnavailable(f"the probe server in {first} exited:\n{probe.log_tail()}")
                with contextlib.suppress(OSError), socket.create_connection((first.address, PROBE_PORT), 1) as conn:
                    return conn.recv(64).decode()
                return None

            try:
                seen = wait_for(root_reaches, timeout, 0.02, desc=f"the probe server in {first} to answer")
            except AssertionError as exc:
                raise MultihostUnavailable(f"the root namespace cannot reach {first}: {exc}") from exc
            if seen != self.gateway:
                raise MultihostUnavailable(f"{first} saw the root namespace's connection from {seen}")
            for host in others:
                try:
                    seen = host.python(_PROBE_CLIENT, first.address, str(PROBE_PORT), str(timeout), timeout=timeout + 5)
                except (HostCommandFailed, subprocess.TimeoutExpired) as exc:
                    raise MultihostUnavailable(
                        f"{host} cannot reach {first} over the bridge {self.bridge} (a firewall dropping "
                        f"forwarded packets while br_netfilter is loaded?): {exc}"
                    ) from exc
                if seen.strip() != host.address:
                    raise MultihostUnavailable(f"{first} saw {host}'s connection from {seen.strip()}")
        finally:
            probe.kill()
            del first.processes[probe.name]

    def log_tails(self, lines: int = 20) -> str:
        """The last ``lines`` lines of every process's log, host by host (for failure messages)."""
        return "\n".join(
            f"--- {host.name}/{name} (pid {process.pid}, exit {process.returncode})\n{process.log_tail(lines)}"
            for host in self.hosts.values()
            for name, process in host.processes.items()
        )

    def stop(self) -> None:
        """Kill every process of every host, delete the veths, namespaces and bridge, remove the
        workdir (unless ``keep_workdir``) and release the lock. Safe to call twice, and after a
        failed :meth:`start`. Raises ``RuntimeError`` listing what could not be removed (after
        trying everything)."""
        errors: list[str] = []
        existing = {entry["name"] for entry in _ip_json("netns", "list")} if self._lock else set()
        for host in self.hosts.values():
            if host.namespace not in existing:
                continue
            try:
                host.kill_all()
            except (AssertionError, subprocess.TimeoutExpired, OSError) as exc:
                errors.append(f"killing the processes of {host}: {exc}")
            _ip("link", "del", host.veth, check=False)
            result = _ip("netns", "del", host.namespace, check=False)
            if result.returncode != 0:
                errors.append(f"ip netns del {host.namespace}: {result.stderr.strip()}")
        if self._lock and any(link["ifname"] == self.bridge for link in _ip_json("link", "show")):
            result = _ip("link", "del", self.bridge, check=False)
            if result.returncode != 0:
                errors.append(f"ip link del {self.bridge}: {result.stderr.strip()}")
        if self._workdir is not None:
            if self.keep_workdir:
                print(f"multihost: logs kept in {self._workdir}")
            else:
                shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None
        if errors:
            raise RuntimeError("multihost teardown: " + "; ".join(errors))
