"""Prometheus series of the jobs (README "Metrics").

- ``jobs_poll_lag_seconds`` (histogram): how late each poll ran after it was due, observed in
  worker-progress where ticks run (``tasks_app.polling.job_poll_tick``);
- ``jobs_supervisor_repairs_total{repair}`` (counter): the supervisor's repairs, counted in
  worker-progress where its passes run (``supervisor.supervise``);
- ``jobs_in_state{state, kind}`` (gauge): the jobs in each state and of each kind, read from
  the database at scrape time by :class:`JobsInStateCollector` (one ``GROUP BY`` query), so no
  process keeps a count that could drift from the rows.

Multiprocess mode: with ``PROMETHEUS_MULTIPROC_DIR`` set in a process's environment when
prometheus_client is first imported, each process writes its values to files in that folder
(prometheus_client/values.py:152-163 picks the mode once, at import; :96 names the files
``<type>_<pid>.db``), and the web's ``/metrics`` adds them up (``proj.metrics``). A Celery pool
process that exits forgets its live gauges (:func:`forget_pool_process`, on Celery's
``worker_process_shutdown``); its counters and histograms stay counted, as they must.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from celery.signals import worker_process_shutdown
from django.db.models import Count
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import mark_process_dead

from tasks_app.kinds import REGISTRY
from tasks_app.models import Job, JobState

#: The environment variable of prometheus_client's multiprocess mode (its folder).
MULTIPROC_DIR_VARIABLE: Final = "PROMETHEUS_MULTIPROC_DIR"
#: Upper bounds of the poll-lag buckets, seconds: a tick runs up to ``PROGRESS_TICK_MS`` (25 ms)
#: after a poll's due time by design; beyond a second a progress worker is falling behind.
POLL_LAG_BUCKETS_S: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: Name of the gauge :class:`JobsInStateCollector` makes.
JOBS_IN_STATE: Final = "jobs_in_state"

POLL_LAG: Final = Histogram(
    "jobs_poll_lag_seconds",
    "Seconds from a poll's due time (Job.poll_due_at) to when a tick polled the job.",
    buckets=POLL_LAG_BUCKETS_S,
)
SUPERVISOR_REPAIRS: Final = Counter(
    "jobs_supervisor_repairs",
    "Repairs the supervisor made, by repair (tasks_app/supervisor.py and items.py names).",
    ["repair"],
)


def multiprocess_dir() -> Path | None:
    """prometheus_client's multiprocess folder (``PROMETHEUS_MULTIPROC_DIR`` of this process's
    environment), or None when each process keeps its own values. Read from the environment
    only, as prometheus_client reads it (values.py:157), never from the ``.env`` file."""
    raw = os.environ.get(MULTIPROC_DIR_VARIABLE)
    return Path(raw) if raw else None


class JobsInStateCollector:
    """A prometheus_client collector: ``jobs_in_state{state, kind}``, the number of jobs in each
    state of each kind, from one ``GROUP BY state, kind`` query per scrape. Every state of every
    registered kind is reported (0 when none), and kinds found in the database that are no
    longer installed too. Raises what the database raises (the scrape then fails)."""

    def collect(self) -> Iterator[Metric]:
        """Yield the one gauge family (prometheus_client's ``Collector`` protocol)."""
        counts: dict[tuple[str, str], int] = {(state, kind): 0 for state in JobState.values for kind in REGISTRY}
        # order_by(): no ordering column may join the GROUP BY (Job's Meta orders by created_at).
        rows = Job.objects.order_by().values_list("state", "kind").annotate(jobs=Count("pk"))
        for state, kind, jobs in rows:
            counts[(state, kind)] = jobs
        family = GaugeMetricFamily(
            JOBS_IN_STATE,
            "Jobs in each state, by kind (read from the database at scrape time).",
            labels=["state", "kind"],
        )
        for (state, kind), jobs in sorted(counts.items()):
            family.add_metric([state, kind], jobs)
        yield family


def forget_pool_process(sender: Any = None, pid: int | None = None, **kwargs: Any) -> None:
    """Receiver of Celery's ``worker_process_shutdown`` (sent by the exiting pool process itself:
    billiard/pool.py:300-305 ``Worker._do_exit`` → celery/concurrency/prefork.py:85-92
    ``process_destructor``): in multiprocess mode, delete the live gauges of process ``pid``
    (``mark_process_dead``, prometheus_client/multiprocess.py:177-183). A pool process killed
    by a signal never sends it; the web's ``/metrics`` forgets those (``proj.metrics``)."""
    path = multiprocess_dir()
    if path is not None and pid is not None:
        mark_process_dead(pid, str(path))  # type: ignore[no-untyped-call]


worker_process_shutdown.connect(forget_pool_process, weak=False)
