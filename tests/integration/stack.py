"""The real stack for integration tests: every Procfile process, started from the Procfile.

Each process runs the exact Procfile command (through ``sh -c``, as honcho runs it) with
its own SQLite file, a Redis database of its own, free ports and a temporary media folder.
Clients talk to it only over real sockets: HTTP, WebSocket, the Celery broker. The processes
are started, stopped and waited for with tests/processes.py.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import redis
from celery import Celery

from proj.localredis import free_port, with_db
from tests import processes
from tests.processes import Process, answers_http, workers_answer

ROOT = Path(__file__).resolve().parents[2]
#: Redis database of the integration stack (unit tests use REDIS_URL's, usually 15); set
#: ``TEST_STACK_REDIS_DB`` to run two test sessions against one server at once.
STACK_REDIS_DB = int(os.environ.get("TEST_STACK_REDIS_DB", "14"))
READY_TIMEOUT_S = 60.0
DEMO_PASSWORD = "integration-demo-password"
OTHER_USER = ("mallory", "integration-mallory-password")
UPLOAD_MAX_BYTES = 1024 * 1024
#: Retry settings of the stack's "down" remote service (its base_url answers nothing).
DOWN_SERVICE = {"max_attempts": 3, "backoff_base_ms": 100, "timeout_s": 2}


def procfile_commands(path: Path = ROOT / "Procfile") -> dict[str, str]:
    """``name → command`` of every Procfile line."""
    commands = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, command = line.partition(":")
            commands[name.strip()] = command.strip()
    return commands


@dataclass
class Stack:
    """A running stack: its base URLs, its environment and its processes."""

    workdir: Path
    env: dict[str, str]
    port: int
    flower_port: int
    redis_url: str
    processes: dict[str, Process] = field(default_factory=dict)

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def demo_service_url(self) -> str:
        return f"http://127.0.0.1:{self.env['DEMO_SERVICE_PORT']}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def origin(self) -> str:
        return self.http_url

    def log_tail(self, name: str, lines: int = 40) -> str:
        """The last ``lines`` lines of ``<name>.log`` (a process's, or a log name given to :meth:`launch`)."""
        return processes.log_tail(self.workdir / f"{name}.log", lines)

    def manage(self, *args: str, extra_env: dict[str, str] | None = None) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env={**self.env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def start(self) -> None:
        for name in procfile_commands():
            self.launch(name)
        self.wait_ready()

    def launch(self, name: str, command: str | None = None, *, log_name: str | None = None) -> None:
        """Start process ``name``: its Procfile command, or ``command`` (an extra process),
        in a session of its own, its output appended to ``<log_name or name>.log``."""
        log_path = self.workdir / f"{log_name or name}.log"
        command = command or procfile_commands()[name]
        self.processes[name] = processes.start(name, command, env=self.env, log_path=log_path, cwd=ROOT)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the whole process group of ``name`` (the shell, the process and
        its pool) and reap it."""
        proc = self.processes[name]
        proc.send_signal(sig)
        proc.wait(30)

    def exited(self) -> dict[str, int]:
        """``name → exit code`` of every process that is no longer running."""
        return {name: code for name, proc in self.processes.items() if (code := proc.poll()) is not None}

    def wait_ready(self) -> None:
        """Wait until the login page, Flower (401: it asks for a password), the demo service and
        both workers answer; raises ``processes.NotReady`` when a process exits meanwhile, or
        after ``READY_TIMEOUT_S``."""
        app = Celery(broker=self.redis_url)
        checks = {
            "web": answers_http(f"{self.http_url}/accounts/login/"),
            "flower": answers_http(f"http://127.0.0.1:{self.flower_port}/", 401),
            "demo-service": answers_http(f"{self.demo_service_url}/health"),
            "workers": workers_answer(app, {"jobs", "progress"}, timeout=0.5),
        }
        try:
            processes.wait_ready(checks, self.processes.values(), READY_TIMEOUT_S, interval=0.2)
        finally:
            app.close()

    def stop(self) -> None:
        """SIGTERM to every process group, SIGKILL to what still runs 20 s later."""
        processes.stop(*self.processes.values(), timeout_s=20)


def build_stack(base_redis_url: str, extra_env: dict[str, str] | None = None) -> Stack:
    """Prepare (database, users) and start every Procfile process (``extra_env`` overrides)."""
    workdir = Path(tempfile.mkdtemp(prefix="jobs-stack-"))
    port, flower_port, demo_service_port = free_port(), free_port(), free_port()
    redis_url = with_db(base_redis_url, STACK_REDIS_DB)
    metrics_dir = workdir / "prometheus"  # one multiprocess folder for the stack, as make run's
    metrics_dir.mkdir()
    env = {
        **os.environ,
        "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
        "PYTHONUNBUFFERED": "1",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "integration-test-secret-key",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        # INTEGRATION_DATABASE_URL runs the stack on another database (e.g. PostgreSQL).
        "DATABASE_URL": os.environ.get("INTEGRATION_DATABASE_URL") or f"sqlite:///{workdir / 'db.sqlite3'}",
        "REDIS_URL": redis_url,
        "MEDIA_ROOT": str(workdir / "media"),
        "PORT": str(port),
        "FLOWER_PORT": str(flower_port),
        "DEMO_SERVICE_PORT": str(demo_service_port),
        "BIND_ADDRESS": "127.0.0.1",
        "DEMO_USERNAME": "demo",
        "DEMO_PASSWORD": DEMO_PASSWORD,
        "UPLOAD_MAX_BYTES": str(UPLOAD_MAX_BYTES),
        "PROGRESS_POLL_INTERVAL_MS": "200",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        # "down": a remote service nothing answers at, with short retries.
        "REMOTE_SERVICES": json.dumps({"down": DOWN_SERVICE | {"base_url": f"http://127.0.0.1:{free_port()}"}}),
        **(extra_env or {}),
    }
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()
    stack = Stack(workdir=workdir, env=env, port=port, flower_port=flower_port, redis_url=redis_url)
    stack.manage("migrate", "--noinput")
    stack.manage("ensure_demo_user")
    stack.manage("ensure_demo_user", extra_env={"DEMO_USERNAME": OTHER_USER[0], "DEMO_PASSWORD": OTHER_USER[1]})
    stack.start()
    return stack


class Endpoints(Protocol):
    """Where a web process answers: a :class:`Stack`, or one host's web process of the
    multi-host tests (tests/multihost/apphosts.py)."""

    @property
    def port(self) -> int: ...

    @property
    def http_url(self) -> str: ...

    @property
    def ws_url(self) -> str: ...

    @property
    def origin(self) -> str: ...


class HttpSession:
    """A logged-in browser-like HTTP session (cookies, CSRF) on the stack."""

    def __init__(self, stack: Endpoints) -> None:
        self.stack = stack
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def cookie(self, name: str) -> str:
        return next((c.value for c in self.jar if c.name == name), "") or ""

    @property
    def cookie_header(self) -> str:
        return "; ".join(f"{c.name}={c.value}" for c in self.jar)

    def login(self, username: str, password: str) -> HttpSession:
        self.opener.open(f"{self.stack.http_url}/accounts/login/", timeout=10).read()
        data = urllib.parse.urlencode(
            {
                "username": username,
                "password": password,
                "csrfmiddlewaretoken": self.cookie("csrftoken"),
            }
        ).encode()
        self.opener.open(f"{self.stack.http_url}/accounts/login/", data=data, timeout=10).read()
        assert self.cookie("sessionid"), f"login as {username} failed"
        return self

    def json(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """``(status, decoded JSON or None)`` of a request to ``path`` with the session and its
        CSRF token; ``body`` is sent as JSON when given."""
        data = json.dumps(body).encode() if body is not None else None
        headers = {"X-CSRFToken": self.cookie("csrftoken"), "Content-Type": "application/json"}
        request = urllib.request.Request(f"{self.stack.http_url}{path}", data=data, headers=headers, method=method)
        try:
            with self.opener.open(request, timeout=30) as resp:
                raw, status = resp.read(), int(resp.status)
        except urllib.error.HTTPError as exc:
            raw, status = exc.read(), int(exc.code)
        return status, json.loads(raw) if raw else None

    def upload(self, name: str, content: bytes, *, csrf: bool = True) -> tuple[int, dict[str, Any]]:
        boundary = uuid.uuid4().hex
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
                "Content-Type: text/csv\r\n\r\n"
            ).encode()
            + content
            + f"\r\n--{boundary}--\r\n".encode()
        )
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        if csrf:
            headers["X-CSRFToken"] = self.cookie("csrftoken")
        request = urllib.request.Request(f"{self.stack.http_url}/uploads/", data=body, headers=headers)
        try:
            with self.opener.open(request, timeout=30) as resp:
                return int(resp.status), json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), json.loads(exc.read())
