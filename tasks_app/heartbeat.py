"""The heartbeat of a running work task: how the supervisor tells live work from lost work.

While a kind's work function runs, a daemon thread of the worker process writes
``Job.heartbeat_at`` every ``JOB_HEARTBEAT_TIMEOUT_S / 5`` seconds, whether the work records
progress or is silent (a thread, not the recorder: a work function may go a long time between
two ``set_progress`` calls). The write is fenced by the attempt number
(``attempts.work_heartbeat``): once the job ended or runs as a newer attempt, it matches no
row, and :attr:`Heartbeat.superseded` turns True; the recorder then raises
``WorkSuperseded`` on its next write, so a copy of the work that lost its attempt stops.

The supervisor (``tasks_app.supervisor``) reads the heartbeat from the database alone: older
than ``JOB_HEARTBEAT_TIMEOUT_S`` means the worker died (or is stuck), and the job runs again.
A work function that holds the GIL for longer than that in one C call stops the thread too;
give such work a longer ``JOB_HEARTBEAT_TIMEOUT_S``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Final

from django.conf import settings
from django.db import DatabaseError, connection

logger = logging.getLogger(__name__)

#: Beats per heartbeat timeout: a worker must miss this many in a row to be declared lost.
BEATS_PER_TIMEOUT: Final = 5


def beat_interval_s() -> float:
    """Seconds between two heartbeats (``JOB_HEARTBEAT_TIMEOUT_S / BEATS_PER_TIMEOUT``)."""
    return float(settings.JOB_HEARTBEAT_TIMEOUT_S) / BEATS_PER_TIMEOUT


class Heartbeat:
    """Context manager: beats for ``(job_id, attempt)`` in a daemon thread while the block runs.

    ``beat`` is the fenced write (``attempts.work_heartbeat``: True while the attempt is the
    job's current one). Database errors are logged and the next beat tries again: a beat
    missed for a database hiccup costs nothing unless ``BEATS_PER_TIMEOUT`` are missed.
    """

    def __init__(
        self, job_id: str, attempt: int, beat: Callable[[str, int], bool], interval_s: float | None = None
    ) -> None:
        self.job_id = job_id
        self.attempt = attempt
        self._beat = beat
        self.interval_s = beat_interval_s() if interval_s is None else interval_s
        self._stop = threading.Event()
        self._superseded = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id[:8]}", daemon=True)

    @property
    def superseded(self) -> bool:
        """True once a beat matched no row: the job ended or a newer attempt owns it."""
        return self._superseded.is_set()

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(self.interval_s + 5)

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.interval_s):
                try:
                    alive = self._beat(self.job_id, self.attempt)
                except DatabaseError as exc:
                    logger.warning("heartbeat of job %s attempt %s not written: %s", self.job_id, self.attempt, exc)
                    continue
                if not alive:
                    logger.info("job %s: attempt %s superseded; its work stops", self.job_id, self.attempt)
                    self._superseded.set()
                    return
        finally:
            connection.close()  # this thread's own database connection
