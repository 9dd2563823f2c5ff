"""The OS processes tests start: one way to start them, stop them and wait until they answer.

:func:`start` runs a command (a shell line through ``sh -c``, as honcho runs Procfile lines, or
an argv) as the leader of a session and process group of its own, its stdout and stderr appended
to a log file; :class:`Process` signals its whole group and shows its log's tail. :func:`stop`
ends several at once (SIGTERM to each group, then SIGKILL to what outlives ``timeout_s``).
:func:`wait_ready` waits until named readiness checks pass, and fails at once, naming the process
and its log's tail, when one of the processes exits meanwhile; :func:`answers_http` and
:func:`workers_answer` are the checks the stacks share (a page's status, Celery workers' pings).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import redis
from celery import Celery

from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[1]
#: Lines of a log that failure messages show.
TAIL_LINES = 40


def log_tail(path: Path, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of the file at ``path`` (empty when there is none)."""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def spawn(
    command: str | Sequence[str], *, env: Mapping[str, str], log_path: Path, cwd: Path | str = ROOT
) -> subprocess.Popen[bytes]:
    """Start ``command`` (a string: through ``/bin/sh -c``) in a new session and process group
    (its pgid is its pid), stdin from ``/dev/null``, stdout and stderr appended to ``log_path``,
    with exactly ``env``, in ``cwd``. Does not wait for anything; raises ``OSError`` when the
    program cannot be run."""
    argv = ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
    with open(log_path, "ab") as log:  # the child holds its own descriptor
        return subprocess.Popen(
            argv,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@dataclass
class Process:
    """A process :func:`start` started: ``name`` (for messages), ``popen``, ``log_path``."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        """Pid of the process, also the id of its process group."""
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        """Exit status once it ended (``-9``: killed by SIGKILL), else None."""
        return self.popen.poll()

    def poll(self) -> int | None:
        """:attr:`returncode` (``subprocess.Popen.poll``)."""
        return self.popen.poll()

    def alive(self) -> bool:
        """True while the process has not exited."""
        return self.popen.poll() is None

    def wait(self, timeout: float | None = None) -> int:
        """Wait up to ``timeout`` seconds (None: forever) for it to exit; its exit status.
        Raises ``subprocess.TimeoutExpired``."""
        return self.popen.wait(timeout)

    def send_signal(self, sig: int, group: bool = True) -> None:
        """Send ``sig`` to its whole process group (the shell, the program and its children),
        or with ``group=False`` to the process alone; nothing when it is already gone."""
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(self.pid, sig)
            else:
                os.kill(self.pid, sig)

    def kill(self, timeout: float = 10.0) -> int:
        """SIGKILL to its process group, then reap it (``timeout`` seconds at most); its exit status."""
        self.send_signal(signal.SIGKILL)
        return self.wait(timeout)

    def log_tail(self, lines: int = TAIL_LINES) -> str:
        """The last ``lines`` lines of its output (stdout and stderr)."""
        return log_tail(self.log_path, lines)

    def describe(self) -> str:
        """``--- <name> (pid, exit status)`` and its log's tail, for failure messages."""
        return f"--- {self.name} (pid {self.pid}, exit {self.returncode})\n{self.log_tail()}"


def start(
    name: str, command: str | Sequence[str], *, env: Mapping[str, str], log_path: Path, cwd: Path | str = ROOT
) -> Process:
    """:func:`spawn` ``command`` as the process ``name``."""
    return Process(name=name, popen=spawn(command, env=env, log_path=log_path, cwd=cwd), log_path=log_path)


def stop(*processes: Process, timeout_s: float, sig: int = signal.SIGTERM) -> None:
    """Stop ``processes`` together: ``sig`` to the process group of each one still running, up to
    ``timeout_s`` seconds (shared) for all of them to exit, then SIGKILL to the group of each one
    left, and reap it."""
    for process in processes:
        if process.alive():
            process.send_signal(sig)
    try:
        wait_for(lambda: not any(p.alive() for p in processes), timeout_s, desc="the processes to exit")
    except AssertionError:
        for process in processes:
            if process.alive():
                process.send_signal(signal.SIGKILL)
    for process in processes:
        process.wait()


class NotReady(AssertionError):
    """:func:`wait_ready` gave up: a process exited, or a check did not pass in time. The
    message names which, with the log tails of the processes."""


def wait_ready(
    checks: Mapping[str, Callable[[], bool]],
    processes: Iterable[Process],
    timeout: float,
    interval: float = 0.2,
) -> None:
    """Wait until every check of ``checks`` (``name → check``) has passed once; a check that
    passed is not asked again. Before each round, every process of ``processes`` must still run:
    one that exited raises :class:`NotReady` at once, naming it with its exit status and log tail.
    After ``timeout`` seconds, :class:`NotReady` names the checks still failing, with every
    process's log tail. Exceptions of the checks propagate."""
    watched = list(processes)
    pending = dict(checks)

    def ready() -> bool:
        for process in watched:
            if not process.alive():
                raise NotReady(f"{process.name} exited with {process.returncode}:\n{process.log_tail()}")
        for name, check in list(pending.items()):
            if check():
                del pending[name]
        return not pending

    try:
        wait_for(ready, timeout, interval, desc=" and ".join(checks))
    except NotReady:
        raise
    except AssertionError:
        tails = "\n".join(process.describe() for process in watched)
        raise NotReady(f"not ready after {timeout:g} s: {sorted(pending)}\n{tails}") from None


def http_status(url: str, headers: dict[str, str] | None = None) -> int:
    """Status of a GET of ``url`` (2 s at most; 0 when nothing answers)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=2) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def answers_http(url: str, status: int = 200) -> Callable[[], bool]:
    """A check: a GET of ``url`` answers ``status``."""
    return lambda: http_status(url) == status


def nodes_answering(app: Celery, timeout: float) -> set[str]:
    """Node names (``jobs@host``) of the Celery workers that answer a ping within ``timeout``
    seconds; empty while the broker is unreachable (it may be coming back)."""
    try:
        replies = app.control.ping(timeout=timeout) or []
    except (redis.RedisError, OSError):
        return set()
    return {name for reply in replies for name in reply}


def workers_answer(app: Celery, nodes: Collection[str], timeout: float = 0.5) -> Callable[[], bool]:
    """A check: every worker of ``nodes`` answers a ping. A node is a full node name
    (``jobs@host``), or a name before the ``@`` (``jobs``: a worker of that name on any host)."""

    def check() -> bool:
        answering = nodes_answering(app, timeout)
        names = answering | {node.split("@")[0] for node in answering}
        return set(nodes) <= names

    return check
