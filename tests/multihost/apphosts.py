"""The application on several hosts: the Procfile's web, worker-jobs, worker-progress and beat in
hosts ``a`` and ``b``, against the PostgreSQL and the Redis behind Sentinel of host ``c``
(tests/multihost/conftest.py).

Each process runs its exact Procfile command in its host's network namespace, with a hostname of
its own (``unshare --uts``), so Celery's ``%h`` gives node names ``jobs@<prefix>-a`` and
``jobs@<prefix>-b`` as on separate machines. The processes reach Redis only through the
Sentinels (``REDIS_SENTINELS``), and the database only over the network. Both hosts run
``celery beat``: the supervisor's passes decide from the database and are safe to repeat, so a
second beat costs passes, not double repairs, and the supervisor outlives either host.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from celery import Celery

from proj.redisconf import RedisConfig
from tests.integration.stack import DEMO_PASSWORD, procfile_commands
from tests.multihost.cluster import PrivatePostgres, SentinelCluster
from tests.multihost.netns import Host, HostProcess, Network
from tests.processes import answers_http, nodes_answering, wait_ready, workers_answer

#: The Procfile processes each application host runs.
APP_PROCESSES = ("web", "worker-jobs", "worker-progress", "beat")
#: The web process's port on each host (each host has an address of its own).
WEB_PORT = 8000
#: Seconds for a host's processes to answer after they were started.
READY_TIMEOUT_S = 60.0
#: Name the Sentinels monitor the primary by (tests/multihost/conftest.py ``redis_cluster``).
MASTER_NAME = "mymaster"


@dataclass
class AppHost:
    """The application processes of one host: ``host`` (its namespace), ``env`` (what every
    process of it gets). ``http_url``, ``ws_url`` and ``origin`` are its web process's, for
    ``tests.integration.stack.HttpSession`` and ``tests.integration.wsclient.JobsClient``."""

    host: Host
    env: dict[str, str]
    port: int = WEB_PORT

    @property
    def hostname(self) -> str:
        """The hostname its processes see (Celery node names ``jobs@<hostname>``)."""
        return self.host.namespace

    @property
    def http_url(self) -> str:
        return f"http://{self.host.address}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host.address}:{self.port}"

    @property
    def origin(self) -> str:
        return self.http_url

    @property
    def nodes(self) -> set[str]:
        """The Celery node names of its workers."""
        return {f"jobs@{self.hostname}", f"progress@{self.hostname}"}

    def start(self, names: Iterable[str] = APP_PROCESSES) -> None:
        """Start the processes ``names`` (their Procfile commands) that are not running."""
        commands = procfile_commands()
        for name in names:
            running = self.host.processes.get(name)
            if running is not None and running.alive():
                continue
            argv = ["unshare", "--uts", "/bin/sh", "-c", 'hostname "$0" && exec /bin/sh -c "$1"']
            self.host.start(name, [*argv, self.hostname, commands[name]], env=self.env)

    def processes(self) -> dict[str, HostProcess]:
        return {name: self.host.processes[name] for name in APP_PROCESSES if name in self.host.processes}

    def exited(self) -> dict[str, int | None]:
        """``name → exit status`` of each of its processes that is no longer running."""
        return {name: proc.returncode for name, proc in self.processes().items() if not proc.alive()}

    def web_check(self) -> Callable[[], bool]:
        """A check: its web process serves the login page."""
        return answers_http(f"{self.http_url}/accounts/login/")


@dataclass
class AppCluster:
    """Both application hosts (``hosts["a"]``, ``hosts["b"]``), the Sentinel cluster and the
    database they share, and a Celery client of the shared broker (``celery``)."""

    hosts: dict[str, AppHost]
    redis: SentinelCluster
    postgres: PrivatePostgres
    redis_config: RedisConfig
    celery: Celery = field(init=False)

    def __post_init__(self) -> None:
        self.celery = Celery(
            broker=self.redis_config.celery_broker_url(),
            broker_transport_options=self.redis_config.celery_transport_options(),
        )

    def __getitem__(self, name: str) -> AppHost:
        return self.hosts[name]

    def start(self) -> None:
        """Start whatever application process is not running, and wait until every one answers."""
        for app_host in self.hosts.values():
            app_host.start()
        self.wait_ready()

    def workers_answering(self) -> set[str]:
        """Node names of the workers that answer a ping (empty while the broker is away)."""
        return nodes_answering(self.celery, timeout=1.0)

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Wait until both web processes serve the login page and every worker answers;
        raises ``processes.NotReady`` (an ``AssertionError``) with the processes' log tails when
        one of them exits, or when they do not answer in time."""
        nodes = set().union(*(h.nodes for h in self.hosts.values()))
        checks = {f"web {name}": app_host.web_check() for name, app_host in self.hosts.items()}
        checks["every worker of hosts a and b"] = workers_answer(self.celery, nodes, timeout=1.0)
        running = [proc for app_host in self.hosts.values() for proc in app_host.processes().values()]
        wait_ready(checks, running, timeout, interval=0.5)

    def exited(self) -> dict[str, int | None]:
        """``"<host>/<process>" → exit status`` of every application process no longer running."""
        return {f"{n}/{p}": code for n, h in self.hosts.items() for p, code in h.exited().items()}

    def log_tails(self, lines: int = 25) -> str:
        return "\n".join(
            f"--- {name}/{proc}\n{app_host.host.log_tail(proc, lines)}"
            for name, app_host in self.hosts.items()
            for proc in APP_PROCESSES
        )


def app_environment(
    network: Network, postgres: PrivatePostgres, redis_cluster: SentinelCluster, media: Path
) -> dict[str, str]:
    """The environment every application process of every host shares: the database of host
    ``c``, Redis through its Sentinels, one media folder (the shared storage uploads need)."""
    sentinels = ",".join(f"{host}:{port}" for host, port in redis_cluster.sentinel_addresses())
    return {
        **os.environ,
        "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
        "PYTHONUNBUFFERED": "1",
        "DJANGO_ENV_FILE": "",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "multihost-test-secret-key",
        "DJANGO_ALLOWED_HOSTS": ",".join(network[name].address for name in ("a", "b")),
        "DATABASE_URL": postgres.url,
        # With Sentinels, REDIS_URL gives only the database number (proj/redisconf.py).
        "REDIS_URL": "redis://primary-from-sentinels/0",
        "REDIS_SENTINELS": sentinels,
        "REDIS_SENTINEL_MASTER": MASTER_NAME,
        "MEDIA_ROOT": str(media),
        "PORT": str(WEB_PORT),
        "DEMO_USERNAME": "demo",
        "DEMO_PASSWORD": DEMO_PASSWORD,
        "PROGRESS_POLL_INTERVAL_MS": "200",
    }


def build_apps(network: Network, postgres: PrivatePostgres, redis_cluster: SentinelCluster) -> AppCluster:
    """Migrate the shared database and create the demo user (from host ``a``), then start
    every application process on hosts ``a`` and ``b`` and wait until they answer."""
    media = network.workdir / "media"
    media.mkdir(exist_ok=True)
    env = app_environment(network, postgres, redis_cluster, media)
    for command in (["migrate", "--noinput"], ["ensure_demo_user"]):
        network["a"].run([sys.executable, "manage.py", *command], env=env, timeout=120)
    hosts = {name: AppHost(network[name], {**env, "BIND_ADDRESS": network[name].address}) for name in ("a", "b")}
    config = RedisConfig(
        url=env["REDIS_URL"], sentinels=list(redis_cluster.sentinel_addresses()), master_name=MASTER_NAME
    )
    apps = AppCluster(hosts=hosts, redis=redis_cluster, postgres=postgres, redis_config=config)
    apps.start()
    return apps
