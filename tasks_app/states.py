"""A job's states and the sets of them (DESIGN.md "WebSocket protocol": pending → running →
succeeded | failed | cancelled, ``cancelling`` between running and cancelled).

Pure Python (Django's ``TextChoices`` needs no settings), so the protocol's job object
(``tasks_app.jobobject``) and the protocol parser use them without the model.
"""

from __future__ import annotations

from django.db.models import TextChoices


class JobState(TextChoices):
    """States of DESIGN.md: pending → running → succeeded | failed | cancelled."""

    PENDING = "pending", "pending"
    RUNNING = "running", "running"
    CANCELLING = "cancelling", "cancelling"
    SUCCEEDED = "succeeded", "succeeded"
    FAILED = "failed", "failed"
    CANCELLED = "cancelled", "cancelled"


FINAL_STATES: frozenset[str] = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
ACTIVE_STATES: frozenset[str] = frozenset({JobState.PENDING, JobState.RUNNING, JobState.CANCELLING})
#: States that count toward a user's active-job limit: a cancel releases its slot at once.
LIMITED_STATES: frozenset[str] = frozenset({JobState.PENDING, JobState.RUNNING})
#: Longest progress message kept, characters (longer ones are cut).
PROGRESS_MESSAGE_MAX_CHARS = 200
