"""``GET /metrics``: the project's Prometheus series for operators (README "Metrics").

What one scrape shows:

- with ``PROMETHEUS_MULTIPROC_DIR`` set (``make run`` and the test stack set it for every
  process but Flower): the values every process of this host wrote to that folder, added up by
  prometheus_client's ``MultiProcessCollector`` (counters and histograms summed over processes,
  dead ones included; ``livesum`` gauges over the live ones), plus ``jobs_in_state`` from the
  database. The live gauges of processes that died without saying so (SIGKILL, OOM) are
  forgotten first (:func:`forget_dead_processes`);
- without it: this (web) process's own registry (its series, and prometheus_client's
  ``process_*`` and ``python_*``), plus ``jobs_in_state``; the workers' series are not seen.

Access (:func:`may_scrape`): a request from loopback that came through no proxy, or HTTP basic
auth of a staff user (the demo login of ``make run`` is one). Anything else is 401 with
``WWW-Authenticate: Basic``. ``METRICS_ENABLED=0`` turns the endpoint off (404).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import re
from pathlib import Path
from typing import Final

from django.conf import settings
from django.contrib.auth import authenticate
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

import realtime.metrics  # noqa: F401 - registers the sockets' and the layer's series in this process
from tasks_app.metrics import JobsInStateCollector, multiprocess_dir

#: Request headers a proxy adds: a request that carries one did not come from this host.
PROXY_HEADERS: Final = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP")
#: The realm of the basic-auth challenge.
REALM: Final = "metrics"
UNAUTHORIZED_MESSAGE: Final = (
    "metrics: scrape from this host (loopback, no proxy), or log in with HTTP basic auth as a staff user\n"
)
#: File of one process's live gauges in the multiprocess folder: ``gauge_<mode>_<pid>.db``
#: (prometheus_client/values.py:89-96; the live modes are those ``mark_process_dead`` deletes).
_LIVE_GAUGE_FILE: Final = re.compile(r"^gauge_live[a-z]+_(\d+)\.db$")


def is_direct_loopback(request: HttpRequest) -> bool:
    """True when the request's peer (``REMOTE_ADDR``) is a loopback address (127.0.0.0/8, ::1)
    and it carries none of :data:`PROXY_HEADERS`: a proxy on this host forwarding an outside
    client also connects from loopback, and says so in those headers."""
    if any(header in request.META for header in PROXY_HEADERS):
        return False
    try:
        return ipaddress.ip_address(str(request.META.get("REMOTE_ADDR", ""))).is_loopback
    except ValueError:
        return False


def is_staff_basic_auth(request: HttpRequest) -> bool:
    """True when the request carries ``Authorization: Basic <base64 user:password>`` whose
    user Django's ``authenticate`` accepts (an active user) and who is staff. A malformed header
    is False, never an error. Costs one password hash (PBKDF2: about 0.3 s of CPU)."""
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return False
    username, colon, password = decoded.partition(":")
    if not colon:
        return False
    user = authenticate(request, username=username, password=password)
    return bool(user is not None and user.is_active and user.is_staff)


def may_scrape(request: HttpRequest) -> bool:
    """The access rule of ``/metrics``: :func:`is_direct_loopback` or :func:`is_staff_basic_auth`."""
    return is_direct_loopback(request) or is_staff_basic_auth(request)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def forget_dead_processes(path: Path) -> list[int]:
    """Delete the live-gauge files in multiprocess folder ``path`` of processes no longer
    running on this host (``mark_process_dead``), so a web process that was SIGKILLed and
    restarted (``make run`` restarts it) does not count its sockets twice. Returns the pids
    forgotten. Only sound when every process writing to ``path`` shares this host's pid
    namespace (one folder per host or container)."""
    dead: set[int] = set()
    for file in path.glob("gauge_live*_*.db"):
        match = _LIVE_GAUGE_FILE.match(file.name)
        if match and not _alive(pid := int(match[1])):
            dead.add(pid)
    for pid in sorted(dead):
        mark_process_dead(pid, str(path))  # type: ignore[no-untyped-call]
    return sorted(dead)


def scrape_registry() -> CollectorRegistry:
    """A registry for one scrape: the multiprocess folder's values when there is one (after
    :func:`forget_dead_processes`), else this process's default registry; and
    ``jobs_in_state`` from the database. Raises ``ValueError`` when ``PROMETHEUS_MULTIPROC_DIR``
    names no folder (``MultiProcessCollector``, prometheus_client/multiprocess.py:29-30)."""
    registry = CollectorRegistry()
    path = multiprocess_dir()
    if path is None:
        registry.register(REGISTRY)
    else:
        if path.is_dir():
            forget_dead_processes(path)
        MultiProcessCollector(registry, str(path))  # type: ignore[no-untyped-call]
    registry.register(JobsInStateCollector())
    return registry


@require_safe
def metrics_view(request: HttpRequest) -> HttpResponse:
    """``GET /metrics``: the Prometheus text format (``CONTENT_TYPE_LATEST``), or 401 with a
    basic-auth challenge (:func:`may_scrape`), or 404 when ``METRICS_ENABLED`` is off."""
    if not settings.METRICS_ENABLED:
        raise Http404("metrics are turned off (METRICS_ENABLED=0)")
    if not may_scrape(request):
        response = HttpResponse(UNAUTHORIZED_MESSAGE, status=401, content_type="text/plain; charset=utf-8")
        response["WWW-Authenticate"] = f'Basic realm="{REALM}", charset="UTF-8"'
        return response
    return HttpResponse(generate_latest(scrape_registry()), content_type=CONTENT_TYPE_LATEST)
