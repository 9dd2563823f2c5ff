"""``manage.py`` errors a new user meets are one line on stderr, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from proj.localredis import free_port

ROOT = Path(__file__).resolve().parents[1]


def manage(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``manage.py ARGS`` in a new terminal's environment plus ``env`` (no .env is read)."""
    base = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8", "DJANGO_ENV_FILE": ""}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=base | env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("args", [("api_token", "create", "demo"), ("jobs", "start", "simulated")])
def test_no_secret_key_with_debug_off_is_one_line(tmp_path, args):
    result = manage(tmp_path, *args, DJANGO_DEBUG="0")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "manage.py: configuration error: DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off (for development,"
        " DJANGO_DEBUG=1: `make run` writes it to .env for every shell of the clone)"
        ' (README "Environment variables")'
    ]


def test_a_database_without_tables_is_one_line(tmp_path):
    database = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    result = manage(tmp_path, "api_token", "create", "demo", DJANGO_DEBUG="1", DATABASE_URL=database)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("manage.py: database error: no such table: auth_user"), line


def test_jobs_without_redis_is_one_line_with_its_own_status(tmp_path):
    dead = f"redis://127.0.0.1:{free_port()}/0"
    result = manage(tmp_path, "jobs", "start", "simulated", "--watch", DJANGO_DEBUG="1", REDIS_URL=dead)
    assert result.returncode == 69
    [line] = result.stderr.splitlines()
    assert line.startswith(f"CommandError: Redis does not answer at {dead}: is the stack running (make run)?"), line


def test_the_env_file_fills_what_the_environment_lacks_and_the_environment_wins(tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("DJANGO_DEBUG='1'\nLOG_LEVEL='WARNING'\nPORT='8123'\n")
    script = "from django.conf import settings as s; print(s.DEBUG, s.PORT, s.ENV_FILE_VALUES['LOG_LEVEL'])"
    result = manage(tmp_path, "shell", "-c", script, DJANGO_ENV_FILE=str(env_file), PORT="9000")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].split() == ["True", "9000", "WARNING"]
