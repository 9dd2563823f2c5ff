"""``remote``: a job that runs on an external HTTP service, followed by the poll chain.

Parameters: ``{"service": NAME, "payload": {...}}``. ``NAME`` is one of the services
configured in ``settings.REMOTE_SERVICES`` (by name only: a client never supplies a URL,
so it cannot make the server call anywhere else); ``payload`` is sent as the body of the
service's start request.

The service contract (README "Remote jobs"):

- ``POST {base}/jobs`` with the payload → ``201 {"id": ...}``. The request carries
  ``Idempotency-Key: <job id>``, so a start retried after a lost answer finds the same job.
- ``GET {base}/jobs/{id}`` → ``{"state": "running"|"succeeded"|"failed"|"cancelled",
  "progress": {"current", "total", "message"}, "result", "error"}``.
- ``DELETE {base}/jobs/{id}`` cancels.

Every call happens in :meth:`RemoteKind.observe`, outside the database transaction, with
the service's timeout. Transient failures (connection errors, timeouts, 429 and 5xx) are
retried inside the poll chain with exponential backoff, ``backoff_base_ms * 2**(n-1)``
capped at ``backoff_max_ms`` for the n-th failure in a row, and shown to viewers as the
job's ``retrying`` notice; after ``max_attempts`` failures in a row, or ``deadline_s``
seconds since the first of them, the job fails with the last cause. Any other 4xx, or an
answer that breaks the contract, fails the job at once. Cancelling sends the DELETE from
the next poll.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

import httpx
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, ValidationInfo, field_validator

from tasks_app.kinds.base import JobKind, Reading, StrictParams
from tasks_app.kinds.registry import register
from tasks_app.progress import Progress

if TYPE_CHECKING:
    from tasks_app.models import Job

logger = logging.getLogger(__name__)

#: Largest payload accepted for a remote job, bytes of JSON.
PAYLOAD_MAX_BYTES: Final = 16 * 1024
#: Longest part of a service's answer quoted in an error, characters.
QUOTE_MAX_CHARS: Final = 300
#: Remote states of the contract.
REMOTE_RUNNING: Final = "running"
REMOTE_SUCCEEDED: Final = "succeeded"
REMOTE_FAILED: Final = "failed"
REMOTE_CANCELLED: Final = "cancelled"

Action = Literal["start", "status", "cancel"]


class ServiceConfig(BaseModel):
    """One entry of ``REMOTE_SERVICES``: where the service is and how to call it.

    ``base_url`` (http or https), ``timeout_s`` per request (seconds), ``headers`` sent with
    every request (e.g. ``Authorization``), ``max_attempts`` failures in a row before the job
    fails, ``deadline_s`` seconds of failures in a row before it fails, ``poll_interval_ms``
    between status requests, ``backoff_base_ms`` / ``backoff_max_ms`` of the retry delays.
    """

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(pattern=r"^https?://")
    timeout_s: float = Field(5.0, gt=0, le=120)
    headers: dict[str, str] = Field(default_factory=dict)
    max_attempts: int = Field(5, ge=1, le=100)
    deadline_s: float = Field(300.0, gt=0)
    poll_interval_ms: int = Field(500, ge=10, le=60_000)
    backoff_base_ms: int = Field(500, ge=10)
    backoff_max_ms: int = Field(30_000, ge=10)


_validated: tuple[object, dict[str, ServiceConfig]] | None = None


def service_configs() -> dict[str, ServiceConfig]:
    """Every configured service, validated once per ``settings.REMOTE_SERVICES`` object (polls
    call this; they do not re-validate). Raises ``ImproperlyConfigured`` naming the bad entry
    and field; it is first called when this module is imported, so a bad entry stops every
    process at start-up."""
    global _validated
    raw = settings.REMOTE_SERVICES
    if _validated is not None and _validated[0] is raw:
        return _validated[1]
    configs = {}
    for name, entry in raw.items():
        try:
            configs[name] = ServiceConfig.model_validate(entry)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ImproperlyConfigured(f"REMOTE_SERVICES[{name!r}] is invalid: {problems}") from None
    _validated = (raw, configs)
    return configs


def backoff_ms(config: ServiceConfig, failures: int) -> int:
    """Delay before the next attempt after ``failures`` (≥ 1) failures in a row, ms."""
    return int(min(config.backoff_max_ms, config.backoff_base_ms * 2 ** max(0, failures - 1)))


def _configured_services(schema: dict[str, JsonValue]) -> None:
    """JSON schema of ``service``: an enum of the services configured (``REMOTE_SERVICES``)
    when the document is made."""
    names: list[JsonValue] = [name for name in sorted(settings.REMOTE_SERVICES)]
    schema["enum"] = names


class RemoteParams(StrictParams):
    """``service``: a configured service name; ``payload``: the start request's body."""

    service: str = Field(
        max_length=64,
        description="Name of a configured service (REMOTE_SERVICES), e.g. demo.",
        json_schema_extra=_configured_services,
    )
    payload: dict[str, Any] = Field(default_factory=dict, description="Body of the service's start request.")

    @field_validator("service")
    @classmethod
    def _configured(cls, value: str, info: ValidationInfo) -> str:
        known = sorted(settings.REMOTE_SERVICES)
        if value not in known:
            raise ValueError(f"unknown service {value!r}; configured services: {', '.join(known) or 'none'}")
        return value

    @field_validator("payload")
    @classmethod
    def _small(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(value)) > PAYLOAD_MAX_BYTES:
            raise ValueError(f"must be at most {PAYLOAD_MAX_BYTES} bytes of JSON")
        return value


@dataclass(frozen=True)
class Observed:
    """The outcome of one call to the service.

    ``ok``: a 2xx answer with a JSON object ``body``. Otherwise ``reason`` says what went
    wrong and ``transient`` whether it is worth trying again.
    """

    action: Action
    ok: bool
    status: int | None = None
    body: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    transient: bool = False


_client_lock = threading.Lock()
_client: tuple[int, httpx.Client] | None = None


def _http() -> httpx.Client:
    """One connection-pooling client per process (a forked worker makes its own)."""
    global _client
    with _client_lock:
        if _client is None or _client[0] != os.getpid():
            _client = (os.getpid(), httpx.Client(follow_redirects=False))
        return _client[1]


def _quote(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= QUOTE_MAX_CHARS else text[:QUOTE_MAX_CHARS] + "…"


def call(config: ServiceConfig, action: Action, method: str, path: str, **kwargs: Any) -> Observed:
    """``method`` ``{base_url}{path}`` with the service's headers and timeout; never raises.

    Returns :class:`Observed`: transport errors, timeouts, 429 and 5xx are transient; other
    non-2xx answers and non-JSON-object bodies are not.
    """
    url = config.base_url.rstrip("/") + path
    headers = {**config.headers, **kwargs.pop("headers", {})}
    try:
        response = _http().request(method, url, headers=headers, timeout=config.timeout_s, **kwargs)
    except httpx.TimeoutException:
        return Observed(action, ok=False, reason=f"no answer within {config.timeout_s:g} s", transient=True)
    except httpx.TransportError as exc:
        return Observed(action, ok=False, reason=f"cannot connect ({type(exc).__name__})", transient=True)
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    detail = body.get("error") if isinstance(body, dict) else None
    if not 200 <= status < 300:
        reason = f"HTTP {status}" + (f": {_quote(str(detail))}" if detail else f": {_quote(response.text)}")
        return Observed(action, ok=False, status=status, reason=reason, transient=status == 429 or status >= 500)
    if not isinstance(body, dict):
        return Observed(action, ok=False, status=status, reason="the answer is not a JSON object")
    return Observed(action, ok=True, status=status, body=body)


class RemoteKind(JobKind):
    """A job running on a configured HTTP service (module docstring: contract, retries)."""

    name = "remote"
    title = "Remote job"
    params_model = RemoteParams
    #: A remote job may run long (the demo service's ``duration_s`` goes up to an hour).
    time_limit_s = 4 * 3600

    def summary(self, params: dict[str, Any]) -> str:
        """``"on demo"``, then what the payload says in the demo service's terms (README "The
        demo service"), when it has them: ``", 10 s, unavailable for 2 s, fails at the end"``."""
        parts = [f"on {params['service']}"]
        payload = params.get("payload") or {}

        def seconds(key: str) -> int | float | None:
            value = payload.get(key)
            return value if isinstance(value, int | float) and not isinstance(value, bool) else None

        duration = seconds("duration_s")
        if duration is not None:
            parts.append(f"{duration:,} s")
        unavailable = seconds("unavailable_s")
        if unavailable:
            parts.append(f"unavailable for {unavailable:,} s")
        if payload.get("fail") is True:
            parts.append("fails at the end")
        return ", ".join(parts)

    def _config(self, job: Job) -> ServiceConfig:
        return service_configs()[job.params["service"]]

    def observe(self, job: Job, now: dt.datetime) -> Observed | None:
        """Start the remote job, ask for its status, or (cancelling) send the DELETE."""
        try:
            config = self._config(job)
        except (KeyError, ImproperlyConfigured) as exc:
            return Observed("status", ok=False, reason=f"service configuration: {exc}")
        remote_id = job.kind_state.get("remote_id")
        if job.state == "cancelling":
            if not remote_id:
                return Observed("cancel", ok=True)
            return call(config, "cancel", "DELETE", f"/jobs/{remote_id}")
        if not remote_id:
            return call(
                config,
                "start",
                "POST",
                "/jobs",
                json=job.params.get("payload", {}),
                headers={"Idempotency-Key": str(job.id)},
            )
        return call(config, "status", "GET", f"/jobs/{remote_id}")

    def cancel_confirmed(self, job: Job, observation: Any) -> bool:
        """Confirmed once a DELETE was sent (whatever it answered: the job ends ``cancelled``
        here either way; a refused DELETE is logged)."""
        if not isinstance(observation, Observed) or observation.action != "cancel":
            return False
        if not observation.ok:
            logger.warning("remote job %s: DELETE not confirmed: %s", job.id, observation.reason)
        return True

    def read(self, job: Job, now: dt.datetime, observation: Any = None) -> Reading:
        """Turn the poll's :class:`Observed` into progress, an outcome or a retry notice."""
        if not isinstance(observation, Observed):
            return Reading(progress=None)
        service = job.params["service"]
        state = {k: v for k, v in job.kind_state.items() if k not in ("failures", "first_failure_at", "next_in_ms")}
        if not observation.ok:
            if not observation.transient:
                verb = "refused to start the job" if observation.action == "start" else "answered"
                return Reading(progress=None, failed=True, error=f"service {service!r} {verb}: {observation.reason}")
            return self._retry(job, now, observation.reason)
        if observation.action == "start":
            remote_id = observation.body.get("id")
            if not isinstance(remote_id, str | int) or not str(remote_id):
                return Reading(progress=None, failed=True, error=f"service {service!r} answered a start without an id")
            state["remote_id"] = str(remote_id)
            message = f"started on {service} (id {remote_id})"
            return Reading(progress=Progress(0, None, message), kind_state=state)
        return self._status(service, observation.body, state)

    def _status(self, service: str, body: dict[str, Any], state: dict[str, Any]) -> Reading:
        remote_state = body.get("state")
        progress_body = body.get("progress") if isinstance(body.get("progress"), dict) else {}
        assert isinstance(progress_body, dict)
        try:
            current = int(progress_body.get("current") or 0)
            total_raw = progress_body.get("total")
            total = int(total_raw) if total_raw is not None else None
        except (TypeError, ValueError):
            return Reading(progress=None, failed=True, error=f"service {service!r} sent progress that is not numbers")
        progress = Progress(current, total, str(progress_body.get("message") or ""))
        if remote_state == REMOTE_RUNNING:
            return Reading(progress=progress, kind_state=state)
        if remote_state == REMOTE_SUCCEEDED:
            return Reading(progress=progress, succeeded=True, result=body.get("result"), kind_state=state)
        if remote_state == REMOTE_FAILED:
            error = str(body.get("error") or "no reason given")
            return Reading(progress=progress, failed=True, error=f"service {service!r} reported: {error}")
        if remote_state == REMOTE_CANCELLED:
            return Reading(progress=progress, failed=True, error=f"the job was cancelled on service {service!r}")
        return Reading(progress=None, failed=True, error=f"service {service!r} sent an unknown state {remote_state!r}")

    def _retry(self, job: Job, now: dt.datetime, reason: str) -> Reading:
        config = self._config(job)
        service = job.params["service"]
        failures = int(job.kind_state.get("failures", 0)) + 1
        first = job.kind_state.get("first_failure_at") or now.isoformat()
        failing_s = (now - dt.datetime.fromisoformat(first)).total_seconds()
        if failures >= config.max_attempts or failing_s >= config.deadline_s:
            return Reading(
                progress=None,
                failed=True,
                error=f"service {service!r} could not be reached: {failures} failed attempts in a row "
                f"over {failing_s:.1f} s; last error: {reason}",
            )
        delay = backoff_ms(config, failures)
        state = {**job.kind_state, "failures": failures, "first_failure_at": first, "next_in_ms": delay}
        retrying = {
            "attempt": failures + 1,
            "max_attempts": config.max_attempts,
            "next_attempt_in_s": delay / 1000,
            "reason": reason,
        }
        message = f"{reason}; retry {failures + 1} of {config.max_attempts} in {delay / 1000:g} s"
        return Reading(
            progress=Progress(job.progress_current, job.progress_total, message), kind_state=state, retrying=retrying
        )

    def next_poll_in_ms(self, job: Job, now: dt.datetime) -> int:
        """The backoff delay while retrying, else the service's poll interval."""
        waiting = job.kind_state.get("next_in_ms")
        if waiting:
            return int(waiting)
        try:
            return self._config(job).poll_interval_ms
        except (KeyError, ImproperlyConfigured):
            return int(settings.PROGRESS_POLL_INTERVAL_MS)


KIND = register(RemoteKind())
service_configs()  # a bad REMOTE_SERVICES entry stops the process here, at start-up
