"""Registry of job kinds: ``name`` → :class:`~tasks_app.kinds.base.JobKind`.

To add a kind, write a module beside these with a ``JobKind`` subclass and add its
instance to ``REGISTRY`` (README "Add a job kind").
"""

from __future__ import annotations

from tasks_app.errors import UnknownKind
from tasks_app.kinds import csv_profile, simulated
from tasks_app.kinds.base import JobKind

REGISTRY: dict[str, JobKind] = {k.name: k for k in (simulated.KIND, csv_profile.KIND)}


def get_kind(name: str) -> JobKind:
    """The registered kind called ``name``; raises :class:`UnknownKind` otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise UnknownKind(f"unknown job kind {name!r}; known kinds: {known}") from None
