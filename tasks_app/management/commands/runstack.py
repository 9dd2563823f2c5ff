"""``manage.py runstack`` (``make run``): Redis, migrations, demo user, then every process.

Runs the Procfile's processes (web, worker-jobs, worker-progress, flower, demo-service, beat)
with honcho in the foreground, each under ``proj/keepalive.py``: a process that exits on its own
is started again after a backoff delay, with a log line, where honcho alone would stop every
process. Ctrl-C stops them all at once, and the embedded Redis if this command started one.

Before the processes start it writes the clone's ``.env`` (:func:`write_local_env`): the
values of the project's variables the stack runs with, so ``manage.py`` in another shell uses
the same database, Redis and debug setting. With ``METRICS_ENABLED`` on it gives the processes
one Prometheus multiprocess folder (:func:`prepare_metrics_dir`, ``PROMETHEUS_MULTIPROC_DIR``),
emptied at every start, so the web's ``/metrics`` adds up every process (README "Metrics").
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from dotenv import set_key
from honcho.environ import parse_procfile

from proj import keepalive
from proj.localredis import RedisHandle, ensure_redis
from tasks_app.metrics import MULTIPROC_DIR_VARIABLE as METRICS_DIR_VARIABLE

#: Seconds honcho gets to stop its processes after Ctrl-C before it is killed.
STOP_GRACE_S = 20
#: Variables of the stack's environment never written to the env file.
#: Seconds to wait for the primary behind REDIS_SENTINELS to answer at start.
SENTINEL_WAIT_S: Final = 5.0
NOT_WRITTEN: Final = frozenset({"DJANGO_ENV_FILE"})
ENV_FILE_HEADER: Final = """\
# Written by `make run` (manage.py runstack) at {at}: the settings of the stack it runs, read by
# manage.py in any other shell of this clone (the environment wins over this file).
# Rewritten at every `make run`: set variables in the environment of `make run` instead.
"""


def write_local_env(path: Path, env: Mapping[str, str], names: Mapping[str, str]) -> list[str]:
    """Write ``path`` (mode 0600: it may hold passwords) with the variables of ``names`` (the
    settings' ``ENVIRONMENT_VARIABLES``) that ``env`` sets, in python-dotenv's format
    (``KEY='value'``, ``dotenv.set_key``). Returns the names written, sorted."""
    written = sorted(name for name in names if name in env and name not in NOT_WRITTEN)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(ENV_FILE_HEADER.format(at=dt.datetime.now().isoformat(timespec="seconds")))
    os.chmod(path, 0o600)  # an older file keeps its mode through O_TRUNC
    for name in written:
        set_key(path, name, env[name], quote_mode="always")
    return written


def prepare_metrics_dir(path: Path) -> Path:
    """Make ``path`` an empty Prometheus multiprocess folder and return it: created when missing,
    and every ``*.db`` file in it (prometheus_client's values, ``<type>_<pid>.db``,
    prometheus_client/values.py:94-96) deleted, as prometheus_client's docs ask between two runs:
    an earlier run's pids would otherwise count again, or be taken by new processes. Other files
    are left alone."""
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    return path


def keepalive_procfile(procfile: str, port: int, python: str = sys.executable) -> str:
    """The Procfile honcho runs: each process of ``procfile`` (parsed by honcho, in order) under
    ``proj/keepalive.py``, with ``PORT=port``.

    honcho gives each process type a PORT of its own (its base, then + 100 per type:
    honcho/environ.py ``expand_processes``), 5000 when PORT is unset; the Procfile's ``$PORT``
    means the settings' (web's port), so every line sets it back.
    """
    processes: dict[str, str] = parse_procfile(procfile).processes
    return "".join(
        f"{name}: PORT={port} {keepalive.shell_line(name, command, python)}\n" for name, command in processes.items()
    )


class Command(BaseCommand):
    help = "Start Redis (embedded if REDIS_URL does not answer), migrate, run every process; restart any that exits."

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.REDIS.uses_sentinel:
            # A Redis behind Sentinel is the operator's: it is used as it is, never replaced.
            if not settings.REDIS.answers(timeout=SENTINEL_WAIT_S):
                raise CommandError(f"Redis does not answer at {settings.REDIS.describe()} (REDIS_SENTINELS)")
            redis_handle = RedisHandle(url=settings.REDIS_URL)
        else:
            redis_handle = ensure_redis(settings.REDIS_URL)
        try:
            call_command("migrate", interactive=False, verbosity=0)
            call_command("ensure_demo_user")
            env = self._environment(redis_handle.url)
            env_file = Path(settings.LOCAL_ENV_FILE)
            write_local_env(env_file, env, settings.ENVIRONMENT_VARIABLES)
            self._banner(redis_handle.url, redis_handle.embedded, env_file)
            self._run_honcho(env)
        finally:
            redis_handle.stop()

    def _environment(self, redis_url: str) -> dict[str, str]:
        env = dict(os.environ)
        env["REDIS_URL"] = redis_url
        env["DJANGO_DEBUG"] = "1" if settings.DEBUG else "0"
        env["PYTHONUNBUFFERED"] = "1"
        bin_dir = str(Path(sys.executable).parent)
        env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
        return env

    def _banner(self, redis_url: str, embedded: bool, env_file: Path) -> None:
        host = settings.BIND_ADDRESS
        if settings.REDIS.uses_sentinel:
            redis_where = f"{settings.REDIS.describe()} (REDIS_SENTINELS)"
        else:
            redis_where = f"{redis_url} ({'embedded redis-server' if embedded else 'REDIS_URL'})"
        lines = [
            "",
            f"  Page:     http://{host}:{settings.PORT}/",
            f"  Admin:    http://{host}:{settings.PORT}/admin/",
            f"  Flower:   http://{host}:{settings.FLOWER_PORT}/",
            f"  Metrics:  http://{host}:{settings.PORT}/metrics (Prometheus; from this machine, or as a staff user)",
            f"  Demo remote service: {settings.DEMO_SERVICE_URL}/health (service name 'demo')",
            f"  Log in:   {settings.DEMO_USERNAME} / {settings.DEMO_PASSWORD}",
            f"  Redis:    {redis_where}",
            f"  Restarts: a process that exits starts again after {keepalive.FIRST_DELAY_S:g} s, doubling"
            f" to {keepalive.MAX_DELAY_S:g} s ('keepalive:' lines)",
            f"  Other shells: {env_file.name} holds these settings; e.g. .venv/bin/python manage.py jobs start"
            " simulated --watch",
            "  Stop:     Ctrl-C",
            "",
        ]
        self.stdout.write("\n".join(lines))

    def _run_honcho(self, env: dict[str, str]) -> None:
        base_dir = Path(settings.BASE_DIR)
        with tempfile.TemporaryDirectory(prefix="runstack-") as workdir:
            procfile = Path(workdir) / "Procfile"
            procfile.write_text(keepalive_procfile((base_dir / "Procfile").read_text(), settings.PORT))
            if settings.METRICS_ENABLED:
                # The operator's folder if they named one, else a fresh one that goes with this run.
                given = env.get(METRICS_DIR_VARIABLE) or str(Path(workdir) / "prometheus")
                env[METRICS_DIR_VARIABLE] = str(prepare_metrics_dir(Path(given)))
            # ``-e /dev/null``: honcho would read the clone's .env and let it override ``env``
            # (honcho/command.py:250-251, ``e.update(p.env)``); ``env`` is already complete.
            cmd = [sys.executable, "-m", "honcho", "-f", str(procfile), "-d", str(base_dir), "-e", os.devnull, "start"]
            # cwd: the processes run from the project (``celery -A proj``).
            proc = subprocess.Popen(cmd, env=env, cwd=base_dir)
            try:
                proc.wait()
            except KeyboardInterrupt:
                # The terminal sent SIGINT to honcho too; it is stopping its processes.
                try:
                    proc.wait(STOP_GRACE_S)
                except (subprocess.TimeoutExpired, KeyboardInterrupt):
                    proc.kill()
                    proc.wait()
