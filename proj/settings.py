"""Django settings: one module, every machine-specific value read from the environment.

The defaults suit a laptop (`make run`): SQLite file, Redis on 127.0.0.1:6379, debug off
unless ``DJANGO_DEBUG`` says otherwise. ``ENVIRONMENT_VARIABLES`` lists every variable this
module reads; the README documents each one and a test keeps the two in step.

A variable missing from the environment is looked up in the local env file (``.env`` of the
clone, or ``DJANGO_ENV_FILE``; empty: none) before its default. ``make run`` writes that file
with the values its processes run with (``manage.py runstack``), so ``manage.py`` typed in
another shell of the clone talks to the same stack (README "Two commands").

Over ~350 lines on purpose: DESIGN.md wants every setting in this one module (no production
module to drift from it); each block is one concern, in the order of INSTALLED_APPS.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from dotenv import dotenv_values
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from proj.redisconf import DEFAULT_MASTER_NAME, RedisConfig, parse_sentinels

BASE_DIR = Path(__file__).resolve().parent.parent

#: Every environment variable the project reads, with its default ("" = unset).
ENVIRONMENT_VARIABLES: dict[str, str] = {"DJANGO_ENV_FILE": ".env"}
#: The local env file ``make run`` writes (``KEY='value'`` lines, python-dotenv's format).
LOCAL_ENV_FILE = BASE_DIR / ".env"
_ENV_FILE = os.environ.get("DJANGO_ENV_FILE", str(LOCAL_ENV_FILE))
#: Values of the env file (empty when there is none); the environment wins over them.
ENV_FILE_VALUES: dict[str, str] = (
    {k: v for k, v in dotenv_values(_ENV_FILE).items() if v is not None}
    if _ENV_FILE and Path(_ENV_FILE).is_file()
    else {}
)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _env(name: str, default: str = "") -> str:
    ENVIRONMENT_VARIABLES[name] = default
    return os.environ.get(name, ENV_FILE_VALUES.get(name, default))


def _env_bool(name: str, default: bool) -> bool:
    raw = _env(name, "1" if default else "0").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean; use 1/0, true/false, yes/no or on/off")


def _env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = _env(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is below the minimum {minimum}")
    return value


DEBUG = _env_bool("DJANGO_DEBUG", False)

_INSECURE_DEV_KEY = "django-insecure-dev-only-key-do-not-use-in-production"
SECRET_KEY = _env("DJANGO_SECRET_KEY") or (_INSECURE_DEV_KEY if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off (for development, DJANGO_DEBUG=1:"
        " `make run` writes it to .env for every shell of the clone)"
    )

ALLOWED_HOSTS = [h.strip() for h in _env("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if h.strip()]
CSRF_TRUSTED_ORIGINS = [o.strip() for o in _env("DJANGO_CSRF_TRUSTED_ORIGINS").split(",") if o.strip()]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_celery_results",
    "ninja",  # the API docs page's Swagger UI, served locally
    "tasks_app",
    "realtime",
]

#: The modules that declare job kinds, imported in this order by ``TasksAppConfig.ready`` in
#: every process (web, workers, beat, commands): the built-in kinds, then the examples of
#: README "Add your own job kind". Add the module of your own kinds here; a kind no module
#: declares does not exist, in any process.
JOB_KIND_MODULES = [
    "tasks_app.kinds.simulated",
    "tasks_app.kinds.csv_profile",
    "tasks_app.kinds.remote",
    "tasks_app.jobkinds",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "proj.urls"
ASGI_APPLICATION = "proj.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# SQLite by default; PostgreSQL (or any dj-database-url URL) through DATABASE_URL.
DATABASES: dict[str, Any] = {
    "default": dj_database_url.parse(_env("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"), conn_max_age=0)
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (web, two worker pools) write to one file: wait for the lock
    # instead of failing, and take it at BEGIN so a read-then-write never deadlocks.
    # Write-ahead log: readers never wait for the writer, and with synchronous=NORMAL a commit
    # does not wait for fsync (https://www.sqlite.org/wal.html: a commit may be lost to a power
    # failure, never to a crash of the process; the database stays consistent). Each poll
    # commits, so this is most of its cost (make bench, README "Benchmarks").
    # Connections kept for DATABASE_CONN_MAX_AGE seconds: with 0, every database_sync_to_async
    # call of the web process (each handshake reads the session and the user, each subscribe
    # the job) opened a new SQLite connection, 10 % of the web process's CPU in make bench's
    # fan-out (py-spy). PostgreSQL has the pool below instead (Django refuses both).
    DATABASES["default"]["CONN_MAX_AGE"] = _env_int("DATABASE_CONN_MAX_AGE", 60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
        }
    )
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A connection pool per process (Django 5.1+, psycopg_pool): with CONN_MAX_AGE 0 every
    # database_sync_to_async call of the web process, so every handshake and job.start,
    # opened a new PostgreSQL connection, and 500 job.starts at once timed out (make bench).
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "pool", {"min_size": 1, "max_size": _env_int("DATABASE_POOL_MAX", 10, minimum=1), "timeout": 10}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = _env("REDIS_URL", "redis://127.0.0.1:6379/0")
# Redis behind Sentinel (proj/redisconf.py): the Sentinels' host:port list; with it, REDIS_URL
# gives only the database number and the primary's password.
try:
    _SENTINELS = parse_sentinels(_env("REDIS_SENTINELS", "")) if _env("REDIS_SENTINELS", "").strip() else []
except ValueError as exc:
    raise ImproperlyConfigured(str(exc)) from None
REDIS = RedisConfig(
    url=REDIS_URL,
    sentinels=_SENTINELS,
    master_name=_env("REDIS_SENTINEL_MASTER", DEFAULT_MASTER_NAME),
    sentinel_password=_env("REDIS_SENTINEL_PASSWORD", ""),
)

CHANNEL_LAYERS = {
    "default": {
        # channels-redis' pub/sub layer, made to survive Redis restarts (realtime/layers.py).
        "BACKEND": "realtime.layers.ResilientPubSubChannelLayer",
        "CONFIG": {
            "hosts": REDIS.channel_layer_hosts(),
            # A socket that stops reading loses frames, never blocks the sender: the
            # Job row stays the truth and a resubscribe returns the snapshot.
            "capacity": 200,
        },
    }
}

CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    # Progress that work tasks record and poll subtasks read: shared by every process.
    "progress": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS.cache_location(),
        "KEY_PREFIX": "jobs-progress",
        "TIMEOUT": 7 * 24 * 3600,
        # Django passes OPTIONS to redis-py's ConnectionPool, whose connections retry nothing
        # by default: after a Redis restart each pooled connection would fail once.
        "OPTIONS": {"retry_on_error": [RedisConnectionError, RedisTimeoutError], **REDIS.cache_options()},
    },
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(_env("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
# WhiteNoise warns at start-up when STATIC_ROOT is missing (before collectstatic ran).
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "templates" / "static"]
# Serve straight from the finders when the files have not been collected (make run).
WHITENOISE_USE_FINDERS = True

MEDIA_ROOT = Path(_env("MEDIA_ROOT", str(BASE_DIR / "media")))

PORT = _env_int("PORT", 8000, minimum=1)
FLOWER_PORT = _env_int("FLOWER_PORT", 5555, minimum=1)
BIND_ADDRESS = _env("BIND_ADDRESS", "127.0.0.1")

DEMO_USERNAME = _env("DEMO_USERNAME", "demo")
DEMO_PASSWORD = _env("DEMO_PASSWORD", "demo")

#: Largest accepted upload, in bytes (default 50 MiB). Larger → HTTP 413.
UPLOAD_MAX_BYTES = _env_int("UPLOAD_MAX_BYTES", 50 * 1024 * 1024, minimum=1)
#: Django must not refuse a multipart body below our own limit with its generic 400.
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

#: Countdown between two polls of one job, in milliseconds.
PROGRESS_POLL_INTERVAL_MS = _env_int("PROGRESS_POLL_INTERVAL_MS", 200, minimum=10)
#: Polls are served in ticks (``tasks_app.ticks``): one ``poll_tick`` task every
#: ``PROGRESS_TICK_MS`` milliseconds that has a due job polls every job due by then, so a poll
#: is at most this much later than its countdown said.
PROGRESS_TICK_MS = _env_int("PROGRESS_TICK_MS", 25, minimum=1)
#: Most jobs one tick polls in one database transaction (a tick with more takes several).
PROGRESS_TICK_BATCH = _env_int("PROGRESS_TICK_BATCH", 100, minimum=1)
#: Redis broker visibility timeout, seconds: a task unacknowledged this long is redelivered.
CELERY_VISIBILITY_TIMEOUT_S = _env_int("CELERY_VISIBILITY_TIMEOUT", 3600, minimum=60)

#: Port of the demo remote service (``make run``'s ``demo-service`` process) and the URL the
#: workers reach it at; with DEMO_SERVICE_TOKEN set it requires ``Authorization: Bearer``.
DEMO_SERVICE_PORT = _env_int("DEMO_SERVICE_PORT", 8001, minimum=1)
DEMO_SERVICE_URL = _env("DEMO_SERVICE_URL", "http://127.0.0.1:${DEMO_SERVICE_PORT}").replace(
    "${DEMO_SERVICE_PORT}", str(DEMO_SERVICE_PORT)
)
DEMO_SERVICE_TOKEN = _env("DEMO_SERVICE_TOKEN")


def _remote_services(raw: str) -> dict[str, dict[str, Any]]:
    """External services of the ``remote`` job kind, by name: the built-in ``demo`` entry,
    updated by the JSON object ``raw`` (``REMOTE_SERVICES``) of ``name → {"base_url": ...,
    "timeout_s", "headers", "max_attempts", "deadline_s", "poll_interval_ms",
    "backoff_base_ms", "backoff_max_ms"}`` (README "Remote jobs")."""
    demo: dict[str, Any] = {"base_url": DEMO_SERVICE_URL}
    if DEMO_SERVICE_TOKEN:
        demo["headers"] = {"Authorization": f"Bearer {DEMO_SERVICE_TOKEN}"}
    services: dict[str, dict[str, Any]] = {"demo": demo}
    if not raw.strip():
        return services
    try:
        extra = json.loads(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"REMOTE_SERVICES is not valid JSON: {exc}") from None
    if not isinstance(extra, dict):
        raise ImproperlyConfigured('REMOTE_SERVICES must be a JSON object: {"name": {"base_url": ...}}')
    for name, config in extra.items():
        if not isinstance(config, dict) or not str(config.get("base_url", "")).startswith(("http://", "https://")):
            raise ImproperlyConfigured(f"REMOTE_SERVICES[{name!r}] needs a base_url starting with http:// or https://")
        services[name] = config
    return services


REMOTE_SERVICES = _remote_services(_env("REMOTE_SERVICES"))

#: WebSocket limits: a frame over this many bytes closes the socket (4400); a client may
#: send RATE_BURST frames at once and RATE_PER_S frames a second after that.
WS_MAX_FRAME_BYTES = 64 * 1024
WS_RATE_BURST = 30
WS_RATE_PER_S = 10.0
#: Frames refused for rate in a row before the socket is closed (4429).
WS_RATE_STRIKES_BEFORE_CLOSE = 20
#: How many jobs one user may have pending/running/cancelling at once.
JOBS_MAX_ACTIVE_PER_USER = 20
#: Byte ranges a ``csv_profile_parallel`` job profiles in parallel when it does not say
#: (``parts``): one per ``worker-jobs`` process of ``make run``.
CSV_PROFILE_PARTS = _env_int("CSV_PROFILE_PARTS", 2, minimum=1)

# Supervision and recovery (DESIGN.md; README "Reliability").
#: Seconds between two passes of the supervisor (``celery beat`` → task ``tasks_app.supervise``).
SUPERVISOR_INTERVAL_S = _env_int("SUPERVISOR_INTERVAL_S", 2, minimum=1)
#: A work task whose last heartbeat is older than this many seconds is lost (its worker died):
#: the job runs again, up to its kind's ``max_attempts``. Work tasks beat every fifth of it.
JOB_HEARTBEAT_TIMEOUT_S = _env_int("JOB_HEARTBEAT_TIMEOUT_S", 10, minimum=2)
#: Seconds between two housekeeping passes (expired Celery results, orphan uploads, stale
#: recorded progress).
HOUSEKEEPING_INTERVAL_S = 3600
#: Celery task results (the admin's "Task results") are kept this many seconds.
RESULT_EXPIRES_S = 7 * 24 * 3600
#: An upload that no job refers to is deleted this many seconds after it was made.
UPLOAD_ORPHAN_MAX_AGE_S = 24 * 3600

# Prometheus metrics for operators (README "Metrics"; proj/metrics.py).
#: ``GET /metrics`` answers (off: 404).
METRICS_ENABLED = _env_bool("METRICS_ENABLED", True)
#: A scraper on this host asks over plain HTTP (the TLS proxy is for the outside): no redirect.
SECURE_REDIRECT_EXEMPT = [r"^metrics$"]
# prometheus_client reads PROMETHEUS_MULTIPROC_DIR from the process environment only (never from
# the env file), and a value that names no folder makes every process fail at its first metric
# (or, when empty, write its files to the working directory): say so here, in one line.
_METRICS_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _METRICS_DIR is not None and not Path(_METRICS_DIR).is_dir():
    raise ImproperlyConfigured(f"PROMETHEUS_MULTIPROC_DIR={_METRICS_DIR!r} is not a folder; create it, or unset it")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": _env("LOG_LEVEL", "INFO")},
}

#: Behind HTTPS, send the session and CSRF cookies over HTTPS only.
SESSION_COOKIE_SECURE = _env_bool("DJANGO_SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
#: Behind a TLS proxy that sets ``X-Forwarded-Proto`` (and drops the one a client sends),
#: trust it to tell HTTPS requests apart; without this Django sees every request as HTTP.
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if _env_bool("DJANGO_SECURE_PROXY_SSL_HEADER", False) else None
)
#: Redirect plain-HTTP requests to HTTPS (``SecurityMiddleware``).
SECURE_SSL_REDIRECT = _env_bool("DJANGO_SECURE_SSL_REDIRECT", False)
#: HTTP Strict Transport Security: ``max-age`` in seconds (0: no header), and its
#: ``includeSubDomains`` and ``preload`` flags. Read Django's "HTTP Strict Transport Security"
#: notes first: browsers remember the header for ``max-age`` seconds.
SECURE_HSTS_SECONDS = _env_int("DJANGO_SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = _env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = _env_bool("DJANGO_SECURE_HSTS_PRELOAD", False)

CSRF_FAILURE_VIEW = "tasks_app.views.csrf_failure"
