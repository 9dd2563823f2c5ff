"""Job kinds that only tests declare: in the registry while their tests run, gone afterwards.

The kind decorators register on import (``job_kind``, ``split_job_kind``), so a test module
that declares a kind at module level takes it out again at once with :func:`declared_apart`
and puts it back for its own tests with :func:`kinds_registered` in a fixture::

    ECHO = declared_apart("test-echo")          # right after the decorated functions

    @pytest.fixture(autouse=True)
    def _kinds():
        with kinds_registered(*ECHO):
            yield

A kind declared inside one test goes in ``with registry_restored():``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from tasks_app.kinds import REGISTRY, JobKind, register


@contextlib.contextmanager
def registry_restored() -> Iterator[dict[str, JobKind]]:
    """Yield the registry; afterwards it holds exactly the kinds it held before."""
    before = dict(REGISTRY)
    try:
        yield REGISTRY
    finally:
        REGISTRY.clear()
        REGISTRY.update(before)


@contextlib.contextmanager
def kinds_registered(*kinds: JobKind) -> Iterator[None]:
    """Register ``kinds`` for the block (``register``'s checks apply), then remove them."""
    with registry_restored():
        for kind in kinds:
            register(kind)
        yield


def declared_apart(*names: str) -> tuple[JobKind, ...]:
    """Take the kinds called ``names`` out of the registry (a test module just declared them)
    and return them; raises ``KeyError`` for a name not registered."""
    return tuple(REGISTRY.pop(name) for name in names)
