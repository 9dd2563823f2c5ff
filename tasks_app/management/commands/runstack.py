"""``manage.py runstack`` (``make run``): Redis, migrations, demo user, then every process.

Runs the Procfile's processes (web, worker-jobs, worker-progress, flower, demo-service, beat)
with honcho in the foreground, each under ``proj/keepalive.py``: a process that exits on its own
is started again after a backoff delay, with a log line, where honcho alone would stop every
process. Ctrl-C stops them all at once, and the embedded Redis if this command started one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from honcho.environ import parse_procfile

from proj import keepalive
from proj.localredis import ensure_redis

#: Seconds honcho gets to stop its processes after Ctrl-C before it is killed.
STOP_GRACE_S = 20


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
        redis_handle = ensure_redis(settings.REDIS_URL)
        try:
            call_command("migrate", interactive=False, verbosity=0)
            call_command("ensure_demo_user")
            env = self._environment(redis_handle.url)
            self._banner(redis_handle.url, redis_handle.embedded)
            self._run_honcho(env)
        finally:
            redis_handle.stop()

    def _environment(self, redis_url: str) -> dict[str, str]:
        env = dict(os.environ)
        env["REDIS_URL"] = redis_url
        env["PYTHONUNBUFFERED"] = "1"
        bin_dir = str(Path(sys.executable).parent)
        env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
        return env

    def _banner(self, redis_url: str, embedded: bool) -> None:
        host = settings.BIND_ADDRESS
        lines = [
            "",
            f"  Page:     http://{host}:{settings.PORT}/",
            f"  Admin:    http://{host}:{settings.PORT}/admin/",
            f"  Flower:   http://{host}:{settings.FLOWER_PORT}/",
            f"  Demo remote service: {settings.DEMO_SERVICE_URL}/health (service name 'demo')",
            f"  Log in:   {settings.DEMO_USERNAME} / {settings.DEMO_PASSWORD}",
            f"  Redis:    {redis_url} ({'embedded redis-server' if embedded else 'REDIS_URL'})",
            f"  Restarts: a process that exits starts again after {keepalive.FIRST_DELAY_S:g} s, doubling"
            f" to {keepalive.MAX_DELAY_S:g} s ('keepalive:' lines)",
            "  Stop:     Ctrl-C",
            "",
        ]
        self.stdout.write("\n".join(lines))

    def _run_honcho(self, env: dict[str, str]) -> None:
        base_dir = Path(settings.BASE_DIR)
        with tempfile.TemporaryDirectory(prefix="runstack-") as workdir:
            procfile = Path(workdir) / "Procfile"
            procfile.write_text(keepalive_procfile((base_dir / "Procfile").read_text(), settings.PORT))
            cmd = [sys.executable, "-m", "honcho", "-f", str(procfile), "-d", str(base_dir), "start"]
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
