"""The job object and the start request: declared once, here, for every side that speaks them.

- :class:`JobObject` is the object every job-bearing frame of the WebSocket protocol carries
  (DESIGN.md "WebSocket protocol, version 1"; README "Protocol"). ``selectors.job_snapshot``
  builds it, the HTTP API answers it (and its OpenAPI schema is generated from it), the
  terminal watcher (``manage.py jobs``) reads frames into it, and a test checks that the page's
  JavaScript fixtures (``tests/js/fixtures``) match it.
- :class:`JobStartRequest` is the body of ``job.start``: the WebSocket frame's fields (parsed
  by ``realtime.protocol``) and ``POST /api/jobs/``'s body.
- The size limits of client input that both adapters enforce.

Pure Python (pydantic and ``tasks_app.states``): no model, no Channels, no Celery.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from tasks_app.states import FINAL_STATES, JobState

#: Longest ``kind`` a client may send, characters (a kind's name is at most 64).
KIND_MAX_CHARS: Final = 64
#: Longest ``idempotency_key``, characters (the column is 64 wide).
IDEMPOTENCY_KEY_MAX_CHARS: Final = 64
#: Bounds and default of a listing's ``limit`` (``job.list``, ``GET /api/jobs/``).
LIST_LIMIT_MIN: Final = 1
LIST_LIMIT_MAX: Final = 100
LIST_LIMIT_DEFAULT: Final = 20

IsoDateTime = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]
JobId = Annotated[str, WithJsonSchema({"type": "string", "format": "uuid"})]


class ProgressObject(BaseModel):
    """A job's progress; ``rate`` and ``eta_seconds`` appear once they can be estimated."""

    current: int = Field(description="Units done (percent for simulated, bytes read for csv_profile).")
    total: int | None = Field(description="Units in all; null when unknown.")
    percent: float | None = Field(description="current / total in percent, 0..100; null when total is unknown.")
    message: str = Field(description="Short human text about the current step.")
    rate: float | None = Field(None, description="Recent speed, units per second (optional).")
    eta_seconds: float | None = Field(None, description="Estimated seconds until the end (optional).")


class RetryingObject(BaseModel):
    """Why and when the job's work is tried again (kinds that reach an external service)."""

    model_config = ConfigDict(extra="allow")

    attempt: int = Field(description="The number of the next attempt, from 2.")
    max_attempts: int
    next_attempt_in_s: float = Field(description="Seconds until the next attempt.")
    reason: str = Field(description="Why the last attempt failed (human text).")


class JobObject(BaseModel):
    """The job object of the WebSocket protocol v1, also the HTTP API's job.

    Times are ISO-8601 strings; ``seq`` grows by one with every saved change of the job, and a
    client keeps the highest it has seen (DESIGN.md). Build one from a row with
    ``tasks_app.selectors.job_snapshot``; read one from a frame with
    ``JobObject.model_validate(frame["job"])`` (raises ``pydantic.ValidationError``).
    ``state`` is kept as its plain string (``use_enum_values``), as frames carry it.
    """

    model_config = ConfigDict(use_enum_values=True)

    id: JobId
    kind: str
    title: str = Field(description="What people call the job's kind, e.g. 'Simulated job'.")
    summary: str = Field(description="The parameters in a few words, e.g. 'step 3% every 200 ms'; may be empty.")
    state: JobState
    params: dict[str, Any] = Field(description="The validated parameters of the kind.")
    progress: ProgressObject
    result: Any = Field(description="The result of a succeeded job; null otherwise.")
    error: str | None = Field(description="Why the job failed (human text); null otherwise.")
    seq: int = Field(description="Grows by one with every saved change; keep the highest seen.")
    created_at: IsoDateTime
    started_at: IsoDateTime | None
    finished_at: IsoDateTime | None
    retrying: RetryingObject | None = Field(
        None, description="Set while the job's work cannot be reached and is retried."
    )

    @property
    def is_final(self) -> bool:
        """True once the job succeeded, failed or was cancelled (it never changes again)."""
        return self.state in FINAL_STATES


class JobStartRequest(BaseModel):
    """What starts a job: the ``job.start`` frame's fields, and ``POST /api/jobs/``'s body.

    Unknown fields are refused (``extra="forbid"``); the WebSocket parser passes only these
    three, since its frames also carry ``type`` and ``request_id``. Raises
    ``pydantic.ValidationError`` for a bad shape; the kind's own ``params`` schema is checked
    later by ``services.job_start`` (``invalid_params``).
    """

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(min_length=1, max_length=KIND_MAX_CHARS, description="A job kind, e.g. simulated.")
    params: dict[str, Any] = Field(default_factory=dict, description="The kind's parameters (an object).")
    idempotency_key: str | None = Field(
        None,
        min_length=1,
        max_length=IDEMPOTENCY_KEY_MAX_CHARS,
        description="The same key from the same user answers the existing job instead of starting another.",
    )
