"""The registry of job kinds: ``name`` → :class:`~tasks_app.kinds.base.JobKind`."""

from __future__ import annotations

import re
from typing import Final

from tasks_app.errors import UnknownKind
from tasks_app.kinds.base import JobKind

REGISTRY: dict[str, JobKind] = {}
#: A kind's name: what clients send as ``kind``, and part of a Celery task name.
NAME_PATTERN: Final = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


def register(kind: JobKind) -> JobKind:
    """Add ``kind`` to the registry and return it.

    Raises ``ValueError`` when the name is not lower-case letters, digits, ``_`` or ``-``
    (at most 64, starting with a letter) or is already taken by another kind.
    """
    if not NAME_PATTERN.match(kind.name):
        raise ValueError(f"job kind name {kind.name!r} must match {NAME_PATTERN.pattern}")
    existing = REGISTRY.get(kind.name)
    if existing is not None and existing is not kind:
        raise ValueError(f"job kind {kind.name!r} is already registered ({type(existing).__qualname__})")
    REGISTRY[kind.name] = kind
    return kind


def get_kind(name: str) -> JobKind:
    """The registered kind called ``name``; raises :class:`UnknownKind` otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise UnknownKind(f"unknown job kind {name!r}; known kinds: {known}") from None
