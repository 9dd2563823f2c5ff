"""Settings of the peer: ``django-admin startproject``'s, less the admin and templates, plus
celery-progress, a Redis broker (``PEER_BROKER_URL``) and a Redis result backend
(``PEER_RESULT_BACKEND``): celery-progress reads progress from the result backend."""

import os
from pathlib import Path

SECRET_KEY = "peer-bench-only-secret-key"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "celery_progress",
    "tests.peer",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "tests.peer.urls"
WSGI_APPLICATION = "tests.peer.wsgi.application"
# Never opened: the progress view reads only the result backend.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": Path(os.environ.get("PEER_WORKDIR", "/tmp")) / "peer.sqlite3",
    }
}
USE_TZ = True
STATIC_URL = "static/"

CELERY_BROKER_URL = os.environ["PEER_BROKER_URL"]
CELERY_RESULT_BACKEND = os.environ["PEER_RESULT_BACKEND"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
