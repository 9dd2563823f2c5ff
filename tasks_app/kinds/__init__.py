"""Job kinds, and the public API to add your own.

- :func:`job_kind` (decorator), :class:`JobFailed`, :class:`StrictParams`: a kind whose
  work is a Celery task reporting through a :class:`ProgressRecorder` (README "Add your
  own job kind").
- :func:`split_job_kind` (decorator): a kind whose work is split into items run in parallel
  by Celery tasks and merged (a group and its callback), one job and one bar.
- :class:`JobKind`: the base class, for kinds driven by the poll chain itself
  (``simulated``, ``remote``).
- :func:`get_kind`, :data:`REGISTRY`: lookup by name.

Built-in kinds: ``simulated``, ``csv_profile``, ``remote``. Which modules declare kinds is
``settings.JOB_KIND_MODULES`` (imported at start-up by ``TasksAppConfig.ready``): importing
this package registers none.
"""

from __future__ import annotations

from tasks_app.kinds.base import JobKind, Progress, Reading, StrictParams
from tasks_app.kinds.registry import REGISTRY, get_kind, register
from tasks_app.kinds.split_kind import SplitKind, split_job_kind
from tasks_app.kinds.task_kind import JobFailed, TaskKind, job_kind
from tasks_app.progress import JobCancelled, ProgressRecorder

__all__ = [
    "REGISTRY",
    "JobCancelled",
    "JobFailed",
    "JobKind",
    "Progress",
    "ProgressRecorder",
    "Reading",
    "SplitKind",
    "StrictParams",
    "TaskKind",
    "get_kind",
    "job_kind",
    "register",
    "split_job_kind",
]
