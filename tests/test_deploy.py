"""Deployment files agree with each other and with the settings: Procfile, docker-compose.yml,
celeryconfig, README."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.core.management import CommandError, call_command

import celeryconfig
from tests.integration.stack import procfile_commands

ROOT = Path(__file__).resolve().parents[1]
PROCESSES = {"web", "worker-jobs", "worker-progress", "flower", "demo-service"}


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


def test_compose_services_run_the_procfile_commands(compose):
    services = compose["services"]
    assert {"redis", "postgres"} | PROCESSES <= set(services)
    for name, command in procfile_commands().items():
        assert unwrap(services[name]["command"]) == command, name


def test_compose_environment_is_what_the_settings_read(compose):
    known = set(settings.ENVIRONMENT_VARIABLES)
    for name in PROCESSES | {"migrate"}:
        env = compose["services"][name]["environment"]
        unknown = set(env) - known
        assert not unknown, f"{name} sets variables no setting reads: {unknown}"
        assert env["DJANGO_DEBUG"] == "0"
        assert env["DATABASE_URL"].startswith("postgres://")
        assert env["REDIS_URL"].startswith("redis://redis:")


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
    assert celeryconfig.task_routes["tasks_app.run_job"] == {"queue": "jobs"}
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
