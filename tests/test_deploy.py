"""Deployment files agree with each other and with the settings: Procfile, docker-compose.yml,
celeryconfig, README."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.core.management import CommandError, call_command

import celeryconfig
from tests.integration.stack import procfile_commands

ROOT = Path(__file__).resolve().parents[1]
PROCESSES = {"web", "worker-jobs", "worker-progress", "flower", "demo-service", "beat"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def unwrap(command: list[str] | str) -> str:
    """A compose command as the shell line it runs: ``sh -c LINE`` with ``$$`` → ``$``."""
    if isinstance(command, list):
        assert command[:2] == ["sh", "-c"], command
        command = command[2]
    return command.replace("$$", "$")


def test_procfile_has_every_process_with_the_design_commands():
    commands = procfile_commands()
    assert set(commands) == PROCESSES
    assert commands["web"].startswith("daphne ")
    assert "proj.asgi:application" in commands["web"]
    assert "-Q jobs " in commands["worker-jobs"]
    assert "-Q progress " in commands["worker-progress"]
    assert 'FLOWER_BASIC_AUTH="${DEMO_USERNAME:-demo}:${DEMO_PASSWORD:-demo}"' in commands["flower"]
    assert "--address=${BIND_ADDRESS:-127.0.0.1}" in commands["flower"]
    assert commands["beat"].startswith("celery -A proj beat ")


def test_compose_services_run_the_procfile_commands(compose):
    services = compose["services"]
    assert {"redis", "postgres"} | PROCESSES <= set(services)
    for name, command in procfile_commands().items():
        assert unwrap(services[name]["command"]) == command, name


def test_compose_restarts_every_long_running_service(compose):
    services = compose["services"]
    for name in PROCESSES | {"redis", "postgres"}:
        assert services[name]["restart"] == "unless-stopped", name
    assert services["migrate"]["restart"] == "no"


def test_compose_health_checks_ask_each_process_what_it_serves(compose):
    """What each check asks; tests/test_runstack.py runs them against the real processes."""
    services = compose["services"]
    checks = {name: services[name]["healthcheck"] for name in PROCESSES | {"redis", "postgres"}}
    for name, check in checks.items():
        assert check["test"][0] in {"CMD", "CMD-SHELL"}, name
        assert check["retries"] >= 3, name
    shell = {name: unwrap(" ".join(check["test"][1:])) for name, check in checks.items()}
    assert "'/accounts/login/'" in shell["web"]
    assert "os.environ['PORT']" in shell["web"]
    assert "'/healthcheck'" in shell["flower"]
    assert "os.environ['FLOWER_PORT']" in shell["flower"]
    assert "'/health'" in shell["demo-service"]
    assert "os.environ['DEMO_SERVICE_PORT']" in shell["demo-service"]
    assert "b'beat'" in shell["beat"]
    for name in ("worker-jobs", "worker-progress"):
        # The node the worker's -n names, on the container's hostname (%h).
        node = re.search(r" -n (\S+)@%h ", procfile_commands()[name])
        assert node, name
        assert f"celery -A proj inspect ping --destination {node[1]}@$HOSTNAME " in shell[name], name


def test_compose_environment_is_what_the_settings_read(compose):
    known = set(settings.ENVIRONMENT_VARIABLES)
    for name in PROCESSES | {"migrate"}:
        env = compose["services"][name]["environment"]
        unknown = set(env) - known
        assert not unknown, f"{name} sets variables no setting reads: {unknown}"
        assert env["DJANGO_DEBUG"] == "0"
        assert env["DJANGO_ENV_FILE"] == "", "a .env copied into the image must not be read"
        assert env["DATABASE_URL"].startswith("postgres://")
        assert env["REDIS_URL"].startswith("redis://redis:")


#: The Sentinels of the compose file's "sentinel" profile, as REDIS_SENTINELS names them.
COMPOSE_SENTINELS = "sentinel-1:26379,sentinel-2:26379,sentinel-3:26379"


def test_compose_sentinel_profile_is_a_primary_a_replica_and_three_sentinels_with_a_quorum_of_two(compose):
    services = compose["services"]
    sentinels = sorted(name for name in services if name.startswith("sentinel-"))
    assert ",".join(f"{name}:26379" for name in sentinels) == COMPOSE_SENTINELS
    for name in ("redis-primary", "redis-replica", *sentinels):
        assert services[name]["profiles"] == ["sentinel"], name
        assert services[name]["restart"] == "unless-stopped", name
        assert services[name]["healthcheck"]["test"][0] == "CMD", name
    assert services["redis-replica"]["command"][-3:] == ["--replicaof", "redis-primary", "6379"]
    for name in sentinels:
        line = unwrap(services[name]["command"])
        assert "'sentinel monitor mymaster redis-primary 6379 2'" in line, name  # 2 of 3 agree it is down
        assert line.endswith("exec redis-server /tmp/sentinel.conf --sentinel"), name
        assert services[name]["hostname"] == name
    web = services["web"]["environment"]
    assert web["REDIS_SENTINELS"] == "${REDIS_SENTINELS:-}"
    assert web["REDIS_SENTINEL_MASTER"] == "${REDIS_SENTINEL_MASTER:-mymaster}"
    readme = (ROOT / "README.md").read_text()
    assert f"REDIS_SENTINELS={COMPOSE_SENTINELS} docker compose --profile sentinel up" in readme


def test_compose_holds_no_database_password(compose):
    required = "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
    assert compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"] == required
    for name in PROCESSES | {"migrate"}:
        assert (
            compose["services"][name]["environment"]["DATABASE_URL"] == f"postgres://jobs:{required}@postgres:5432/jobs"
        )
    assert "jobs:jobs@" not in (ROOT / "docker-compose.yml").read_text()


#: The README's production settings ("Deployment").
PRODUCTION_ENV = {
    "DJANGO_DEBUG": "0",
    "DJANGO_SECRET_KEY": "k" * 20 + "-production-check-only-" + "z9" * 20,
    "DJANGO_ALLOWED_HOSTS": "jobs.example.com",
    "DJANGO_CSRF_TRUSTED_ORIGINS": "https://jobs.example.com",
    "DJANGO_SECURE_COOKIES": "1",
    "DJANGO_SECURE_PROXY_SSL_HEADER": "1",
    "DJANGO_SECURE_SSL_REDIRECT": "1",
    "DJANGO_SECURE_HSTS_SECONDS": "31536000",
    "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS": "1",
    "DJANGO_SECURE_HSTS_PRELOAD": "1",
}


def test_check_deploy_passes_with_the_readmes_production_settings():
    readme = (ROOT / "README.md").read_text()
    for name, value in PRODUCTION_ENV.items():
        if name.startswith("DJANGO_SECURE_"):
            assert f"{name}={value}" in readme, name
    env = {**os.environ, **PRODUCTION_ENV}
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_every_environment_variable_is_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    missing = [name for name in settings.ENVIRONMENT_VARIABLES if f"`{name}`" not in readme]
    assert not missing, f"README does not document {missing}"


def test_celery_rules_of_the_design():
    assert celeryconfig.task_serializer == "json"
    assert celeryconfig.accept_content == ["json"]
    assert celeryconfig.result_serializer == "json"
    assert celeryconfig.result_backend == "django-db"
    assert celeryconfig.result_extended is True
    assert celeryconfig.task_track_started is True
    assert celeryconfig.worker_send_task_events is True
    assert celeryconfig.task_send_sent_event is True
    assert celeryconfig.task_routes["tasks_app.poll_job"] == {"queue": "progress"}
    # run_job is short: on the progress queue, a job starts even while every jobs slot is busy.
    assert celeryconfig.task_routes["tasks_app.run_job"] == {"queue": "progress"}
    visibility = celeryconfig.broker_transport_options["visibility_timeout"]
    assert visibility >= settings.PROGRESS_POLL_INTERVAL_MS / 1000 * 10


@pytest.mark.django_db
def test_demo_user_refuses_the_default_password_without_debug(settings):
    settings.DEBUG = False
    settings.DEMO_PASSWORD = "demo"
    with pytest.raises(CommandError, match="DEMO_PASSWORD is the default"):
        call_command("ensure_demo_user")
    settings.DEMO_PASSWORD = "a-real-password-1"
    call_command("ensure_demo_user")
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.get(username=settings.DEMO_USERNAME)
    assert user.is_superuser
    assert user.check_password("a-real-password-1")


def test_postgresql_gets_a_connection_pool_per_process():
    """Every process pools its PostgreSQL connections (Django's ``pool`` option); Celery's
    Django fixup closes the pool of a prefork child (celery/fixups/django.py:231-234)."""
    env = {
        **os.environ,
        "DJANGO_DEBUG": "1",
        "DATABASE_URL": "postgres://u@127.0.0.1:5432/db",
        "DATABASE_POOL_MAX": "7",
    }
    code = "from django.conf import settings; print(settings.DATABASES['default']['OPTIONS']['pool'])"
    result = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "proj.settings", "DJANGO_ENV_FILE": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "{'min_size': 1, 'max_size': 7, 'timeout': 10}"
