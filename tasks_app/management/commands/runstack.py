"""``manage.py runstack`` (``make run``): Redis, migrations, demo user, then every process.

Runs the Procfile's processes (web, worker-jobs, worker-progress, flower, demo-service)
with honcho in the foreground. Ctrl-C stops them all, and the embedded Redis if this command started one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from proj.localredis import ensure_redis

#: Seconds honcho gets to stop its processes after Ctrl-C before it is terminated.
STOP_GRACE_S = 20


class Command(BaseCommand):
    help = "Start Redis (embedded if REDIS_URL does not answer), migrate, and run every process."

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
            "  Stop:     Ctrl-C",
            "",
        ]
        self.stdout.write("\n".join(lines))

    def _run_honcho(self, env: dict[str, str]) -> None:
        procfile = str(Path(settings.BASE_DIR) / "Procfile")
        cmd = [sys.executable, "-m", "honcho", "-f", procfile, "-d", str(settings.BASE_DIR), "start"]
        proc = subprocess.Popen(cmd, env=env)
        try:
            proc.wait()
        except KeyboardInterrupt:
            # The terminal sent SIGINT to honcho too; it is stopping its processes.
            try:
                proc.wait(STOP_GRACE_S)
            except (subprocess.TimeoutExpired, KeyboardInterrupt):
                proc.terminate()
                proc.wait()
