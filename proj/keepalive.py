"""``python -P proj/keepalive.py NAME -- COMMAND [ARG]...``: run COMMAND, start it again when it exits.

``manage.py runstack`` (``make run``) runs every Procfile process under this wrapper: honcho
stops the whole stack as soon as one of its processes ends (honcho/manager.py ``loop``: "If one
process terminates, all the others will be terminated"), so a process must only end there when
honcho asked it to.

Guarantees:

- COMMAND runs in a session (so a process group) of its own: a stop signal is sent to its whole
  tree (``sh -c``, the Celery main process and its pool), and a terminal's Ctrl-C reaches only
  the process manager, which stops everything in order.
- When COMMAND exits on its own, whatever is left of its process group is killed, one line is
  logged (how it ended, how long it ran, the restart's number and delay) and COMMAND starts
  again after that delay: 1 s, doubling up to 30 s, back to 1 s once a run lasted 60 s
  (:class:`RestartPolicy`). It never gives up.
- SIGTERM, SIGINT or SIGHUP to the wrapper is forwarded to COMMAND's process group, each as it
  comes; the wrapper waits up to ``--stop-grace-s`` seconds for the group to exit, kills it with
  SIGKILL if it has not, and exits with 128 + the first signal's number, restarting nothing.
- It imports nothing but the standard library and runs as a script (``-P``: its folder is not
  put on ``sys.path``), not as ``-m proj.keepalive``: importing the ``proj`` package would load
  Celery and the settings into every wrapper (about 20 MiB each) and tie it to the app it keeps.
- On Linux the wrapper is its tree's subreaper (orphans of the tree are reaped here, not left to
  an init that may never reap them) and receives SIGTERM when its parent dies, so a stack whose
  process manager is gone stops instead of being restarted forever.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import logging
import os
import select
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

logger = logging.getLogger("keepalive")

#: Seconds before the first restart; each restart in a row doubles it ...
FIRST_DELAY_S = 1.0
#: ... up to this many seconds.
MAX_DELAY_S = 30.0
#: A run that lasted this many seconds resets the delay to ``FIRST_DELAY_S``.
RESET_AFTER_S = 60.0
#: Seconds COMMAND's group gets to exit after a stop signal before SIGKILL. Below honcho's
#: ``KILL_WAIT`` (5 s after the first process stopped, honcho/manager.py), after which honcho
#: SIGKILLs the wrapper's group, which does not hold COMMAND's session: the wrapper must have
#: stopped COMMAND by then or it would be left running.
STOP_GRACE_S = 4.0
#: Seconds to wait for a process group to be gone after SIGKILL.
KILL_WAIT_S = 2.0
#: Seconds between looks at a process group emptying (a member not our child sends no SIGCHLD).
GROUP_POLL_S = 0.2
#: Signals that stop the wrapper (forwarded to COMMAND's process group).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
#: This file, run by :func:`shell_line`.
SCRIPT = os.path.abspath(__file__)
#: prctl(2) options (linux/prctl.h).
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


@dataclass(frozen=True)
class Restart:
    """One decision of :class:`RestartPolicy`: restart number ``number`` (1 for the first)
    after ``delay_s`` seconds, the run before it having lasted ``uptime_s`` seconds."""

    number: int
    delay_s: float
    uptime_s: float


class RestartPolicy:
    """Exponential backoff between restarts, reset by a run that lasted long enough.

    The delay is ``first_delay_s`` for the first restart and doubles with each restart, up to
    ``max_delay_s``; a run of at least ``reset_after_s`` seconds brings it back to
    ``first_delay_s``. All values in seconds, read from ``clock`` (``time.monotonic`` unless a
    test injects another). Raises ``ValueError`` for a non-positive first delay or reset time,
    or a maximum below the first delay.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        first_delay_s: float = FIRST_DELAY_S,
        max_delay_s: float = MAX_DELAY_S,
        reset_after_s: float = RESET_AFTER_S,
    ) -> None:
        if first_delay_s <= 0 or reset_after_s <= 0 or max_delay_s < first_delay_s:
            raise ValueError(
                f"need 0 < first_delay_s <= max_delay_s and reset_after_s > 0, got "
                f"{first_delay_s}, {max_delay_s}, {reset_after_s}"
            )
        self._clock = clock
        self._first_delay_s = first_delay_s
        self._max_delay_s = max_delay_s
        self._reset_after_s = reset_after_s
        self._next_delay_s = first_delay_s
        self._restarts = 0
        self._started_at: float | None = None

    def started(self) -> None:
        """Record that the command (re)started now."""
        self._started_at = self._clock()

    def exited(self) -> Restart:
        """The command exited now: when to start it again. Raises ``RuntimeError`` before
        :meth:`started`."""
        if self._started_at is None:
            raise RuntimeError("exited() before started()")
        uptime_s = self._clock() - self._started_at
        self._started_at = None
        if uptime_s >= self._reset_after_s:
            self._next_delay_s = self._first_delay_s
        delay_s = self._next_delay_s
        self._next_delay_s = min(delay_s * 2, self._max_delay_s)
        self._restarts += 1
        return Restart(number=self._restarts, delay_s=delay_s, uptime_s=uptime_s)


def _signal_name(number: int) -> str | None:
    try:
        return signal.Signals(number).name
    except ValueError:
        return None


def describe_exit(returncode: int) -> str:
    """How a process ended, from its ``Popen.returncode``: ``"signal SIGKILL"`` (negative),
    ``"exit code 137 = 128 + SIGKILL"`` (a shell's report of a child killed by a signal) or
    ``"exit code 3"``."""
    if returncode < 0:
        return f"signal {_signal_name(-returncode) or -returncode}"
    name = _signal_name(returncode - 128) if returncode > 128 else None
    return f"exit code {returncode} = 128 + {name}" if name else f"exit code {returncode}"


def shell_line(name: str, command: str, python: str = sys.executable) -> str:
    """A shell line that replaces its shell (``exec``) with this wrapper running the shell line
    ``command`` as ``/bin/sh -c COMMAND``, quoted so that the shell passes it on unexpanded."""
    return "exec " + shlex.join([python, "-P", SCRIPT, name, "--", "/bin/sh", "-c", command])


def _prctl(option: int, value: int) -> bool:
    """prctl(2) on Linux; False elsewhere or when the call fails."""
    if not sys.platform.startswith("linux"):
        return False
    result: int = ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
    return result == 0


class Keeper:
    """Runs ``argv`` and keeps it running, as the module docstring says. ``run`` installs signal
    handlers, so it must run in the main thread of a process of its own."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        policy: RestartPolicy | None = None,
        stop_grace_s: float = STOP_GRACE_S,
    ) -> None:
        self._name = name
        self._argv = list(argv)
        self._policy = policy or RestartPolicy()
        self._stop_grace_s = stop_grace_s
        self._child: subprocess.Popen[bytes] | None = None
        self._received: list[int] = []  # stop signals, in order; appended by the handler
        self._forwarded = 0  # how many of them went to the child's group
        self._subreaper = False
        self._wake_r = self._wake_w = -1

    def run(self) -> int:
        """Keep the command running until a stop signal; returns 128 + that signal's number."""
        previous = self._install()
        try:
            while not self._received:
                started = self._start()
                if started:
                    self._wait_until(lambda: bool(self._received) or self._child_exited())
                if self._received:
                    break
                restart = self._policy.exited()
                how = self._end_of_run() if started else "could not start"
                logger.warning(
                    "%s exited (%s) after %.1f s; restart %d in %g s",
                    self._name,
                    how,
                    restart.uptime_s,
                    restart.number,
                    restart.delay_s,
                )
                self._wait_until(lambda: bool(self._received), timeout=restart.delay_s)
            self._stop()
            return 128 + self._received[0]
        finally:
            self._uninstall(previous)

    # Signals: handlers only record; the wakeup fd wakes the loop's select().

    def _install(self) -> dict[int, Any]:
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        previous: dict[int, Any] = {-1: signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)}
        for signum in (*STOP_SIGNALS, signal.SIGCHLD):
            previous[signum] = signal.signal(signum, self._on_signal)
        self._subreaper = _prctl(_PR_SET_CHILD_SUBREAPER, 1)
        return previous

    def _uninstall(self, previous: dict[int, Any]) -> None:
        for signum, handler in previous.items():
            if signum != -1:
                signal.signal(signum, handler)
        signal.set_wakeup_fd(previous[-1])
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum != signal.SIGCHLD:
            self._received.append(signum)

    # The child and its process group.

    def _start(self) -> bool:
        self._policy.started()
        try:
            self._child = subprocess.Popen(self._argv, start_new_session=True)
        except OSError as exc:
            logger.error("%s: cannot start %s: %s", self._name, shlex.join(self._argv), exc)
            self._child = None
            return False
        return True

    def _child_exited(self) -> bool:
        return self._child is not None and self._child.returncode is not None

    def _group_alive(self) -> bool:
        """Whether the child runs or any process of its group (its pid) is left."""
        if self._child is None:
            return False
        if self._child.returncode is None:
            return True
        try:
            os.killpg(self._child.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def _signal_group(self, signum: int) -> None:
        if self._child is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._child.pid, signum)

    def _end_of_run(self) -> str:
        """After the child exited on its own: how it ended; what is left of its group killed."""
        assert self._child is not None
        assert self._child.returncode is not None
        how = describe_exit(self._child.returncode)
        if self._group_alive():
            self._signal_group(signal.SIGKILL)
            if not self._wait_until(lambda: not self._group_alive(), KILL_WAIT_S, GROUP_POLL_S):
                logger.error("%s: processes of group %d outlive SIGKILL", self._name, self._child.pid)
        return how

    def _stop(self) -> None:
        """After a stop signal (already forwarded by ``_wait_until``): the group gone, or killed."""
        if self._wait_until(lambda: not self._group_alive(), self._stop_grace_s, GROUP_POLL_S):
            return
        logger.warning("%s still running %g s after a stop signal; sending SIGKILL", self._name, self._stop_grace_s)
        self._signal_group(signal.SIGKILL)
        self._wait_until(lambda: not self._group_alive(), KILL_WAIT_S, GROUP_POLL_S)

    def _reap(self) -> None:
        """Collect exited children: the child through its Popen (which records its status),
        adopted orphans (as subreaper) directly."""
        if self._child is not None:
            self._child.poll()
        if not self._subreaper:
            return
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None:
                return
            if self._child is not None and info.si_pid == self._child.pid:
                if self._child.poll() is None:
                    return
            else:
                os.waitpid(info.si_pid, 0)

    def _forward(self) -> None:
        while self._forwarded < len(self._received):
            self._signal_group(self._received[self._forwarded])
            self._forwarded += 1

    def _wait_until(self, done: Callable[[], bool], timeout: float | None = None, poll_s: float | None = None) -> bool:
        """Reap, forward stop signals and wait for signals until ``done()``; True then, False
        after ``timeout`` seconds (None: no limit). ``poll_s`` bounds each wait, for conditions
        no signal announces."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._reap()
            self._forward()
            if done():
                return True
            wait_s = poll_s
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                wait_s = remaining if wait_s is None else min(wait_s, remaining)
            select.select([self._wake_r], [], [], wait_s)
            with contextlib.suppress(BlockingIOError):
                while os.read(self._wake_r, 512):
                    pass


def main(argv: Sequence[str] | None = None) -> int:
    """Command line (module docstring); returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="keepalive", description="Run a command; restart it, with backoff, when it exits."
    )
    grace = f"seconds the command gets to exit after a stop signal before SIGKILL (default {STOP_GRACE_S:g})"
    parser.add_argument("--stop-grace-s", type=float, default=STOP_GRACE_S, help=grace)
    parser.add_argument("name", help="the process's name in log lines")
    parser.add_argument("command", nargs="+", help="after --: the command and its arguments")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="keepalive: %(message)s", stream=sys.stderr)
    parent = os.getppid()
    keeper = Keeper(args.name, args.command, stop_grace_s=args.stop_grace_s)
    if _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM) and os.getppid() != parent:
        return 128 + signal.SIGTERM  # the parent died before the death signal was set
    return keeper.run()


if __name__ == "__main__":
    raise SystemExit(main())
