"""The one port from the kinds to the services: what a kind's Celery task body calls.

A decorated kind (``job_kind``, ``split_job_kind``) makes Celery tasks whose bodies claim the
attempt, run the kind's function with a recorder and record how it ended. That recording is
services' work (``tasks_app.attempts``, ``tasks_app.items``), and kinds never import services
(the import rule, ``tests/test_imports.py``): the task bodies call the :class:`WorkAdapter`
installed here, which is ``tasks_app.work``, installed by ``TasksAppConfig.ready``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from celery import Task
    from pydantic import BaseModel

    from tasks_app.kinds.split_kind import SplitKind


class WorkAdapter(Protocol):
    """The task bodies of decorated kinds (``tasks_app.work`` has their documentation)."""

    def run_work(
        self,
        task: Task,
        job_id: str,
        attempt: int,
        name: str,
        params_model: type[Any],
        function: Callable[..., Any],
        min_interval_ms: int,
        time_limit_s: int,
    ) -> Any: ...

    def run_split(
        self,
        task: Task,
        job_id: str,
        attempt: int,
        kind: SplitKind,
        params_model: type[BaseModel],
        split: Callable[[Any], Sequence[Any]],
        size: Callable[[Any], int],
    ) -> Any: ...

    def run_item(
        self,
        task: Task,
        job_id: str,
        attempt: int,
        index: int,
        item_attempt: int,
        kind: SplitKind,
        params_model: type[BaseModel],
        function: Callable[..., Any],
        min_interval_ms: int,
    ) -> Any: ...

    def run_merge(
        self,
        task: Task,
        job_id: str,
        attempt: int,
        kind: SplitKind,
        params_model: type[BaseModel],
        merge: Callable[[Any, list[Any]], Any],
    ) -> Any: ...


_installed: list[WorkAdapter] = []


def install_work_adapter(adapter: WorkAdapter) -> None:
    """Make ``adapter`` the one the task bodies call (again: the last one wins)."""
    _installed[:] = [adapter]


def work_adapter() -> WorkAdapter:
    """The installed adapter; raises ``RuntimeError`` when none is (Django was not set up:
    ``TasksAppConfig.ready`` installs ``tasks_app.work``)."""
    if not _installed:
        raise RuntimeError("no work adapter installed: django.setup() runs TasksAppConfig.ready, which installs it")
    return _installed[0]
