"""The terminal watcher's display: one job's rich progress bar (``manage.py jobs watch``).

It shows :class:`~tasks_app.jobobject.JobObject` values that ``realtime.follower.watch_job``
passes on; it knows nothing of channels or the database.
"""

from __future__ import annotations

import datetime as dt
from types import TracebackType
from typing import Any, Final, cast

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID
from rich.text import Text

from tasks_app.jobobject import JobObject
from tasks_app.states import JobState

#: Characters of the job id shown in the progress bar's description.
SHORT_ID_CHARS: Final = 8
#: Redraws of the progress bar per second on a terminal, and the bar's width in characters.
REFRESH_PER_SECOND: Final = 4
BAR_WIDTH: Final = 30


def _job(task: Task) -> JobObject:
    return cast(JobObject, task.fields["job"])


def format_duration(seconds: float) -> str:
    """``3725.2`` → ``"1:02:05"`` (whole seconds, like rich's own time columns)."""
    return str(dt.timedelta(seconds=max(0, round(seconds))))


class DescriptionColumn(ProgressColumn):
    """``kind shortid`` in bold (a ``Text``, so a kind name is never read as rich markup)."""

    def render(self, task: Task) -> Text:
        return Text(task.description, style="bold")


class PercentColumn(ProgressColumn):
    """The job's own ``percent`` (``?`` while the total is unknown)."""

    def render(self, task: Task) -> Text:
        percent = _job(task).progress.percent
        return Text(f"{percent:5.1f}%" if percent is not None else "    ?%", style="progress.percentage")


class CountColumn(ProgressColumn):
    """``current/total`` in the kind's units (``?`` for an unknown total)."""

    def render(self, task: Task) -> Text:
        progress = _job(task).progress
        total = progress.total if progress.total is not None else "?"
        return Text(f"{progress.current}/{total}", style="progress.download")


class DetailColumn(ProgressColumn):
    """The state when it is not ``running``, the message, the rate and ETA, and a retry."""

    def render(self, task: Task) -> Text:
        return Text(describe_detail(_job(task)))


class JobElapsedColumn(ProgressColumn):
    """Time since the job started (not since this watcher did), frozen once it finished."""

    def render(self, task: Task) -> Text:
        job = _job(task)
        started = _parse_time(job.started_at)
        if started is None:
            return Text("-:--:--", style="progress.elapsed")
        end = _parse_time(job.finished_at) or dt.datetime.now(dt.UTC)
        return Text(format_duration((end - started).total_seconds()), style="progress.elapsed")


def _parse_time(value: str | None) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(value) if value else None
    except ValueError:
        return None


def describe_detail(job: JobObject) -> str:
    """Short text beside the bar: ``[state] message · 12.5/s · eta 0:00:08 · retrying ...``.

    ``progress.rate`` (units per second), ``progress.eta_seconds`` and ``retrying`` are shown
    when the job object has them (not null).
    """
    progress = job.progress
    parts = []
    head = progress.message if job.state == JobState.RUNNING else f"[{job.state}] {progress.message}".strip()
    if head:
        parts.append(head)
    if progress.rate is not None:
        parts.append(f"{progress.rate:.3g}/s")
    if progress.eta_seconds is not None and not job.is_final:
        parts.append(f"eta {format_duration(progress.eta_seconds)}")
    retrying = describe_retrying(job.retrying.model_dump() if job.retrying is not None else None)
    if retrying:
        parts.append(retrying)
    return " · ".join(parts)


def describe_retrying(retrying: Any) -> str:
    """``"retrying (attempt 2/5): <reason>"`` from a ``retrying`` object; ``""`` for null.

    Tolerant of its shape (it allows extra keys): ``attempt``, ``max_attempts`` and a reason
    in ``reason``, ``error`` or ``message`` are each used when present.
    """
    if not retrying:
        return ""
    if not isinstance(retrying, dict):
        return "retrying"
    text = "retrying"
    attempt, limit = retrying.get("attempt"), retrying.get("max_attempts")
    if attempt is not None:
        text += f" (attempt {attempt}/{limit})" if limit is not None else f" (attempt {attempt})"
    reason = retrying.get("reason") or retrying.get("error") or retrying.get("message")
    return f"{text}: {reason}" if reason else text


class JobDisplay:
    """A rich progress bar of one job on ``console`` (hidden when not ``visible``), and with
    ``trace`` one plain line per job object taken. A context manager: the bar runs inside."""

    def __init__(self, console: Console, *, visible: bool, trace: bool) -> None:
        self.console = console
        self.trace = trace
        self.progress = Progress(
            DescriptionColumn(),
            BarColumn(bar_width=BAR_WIDTH),
            PercentColumn(),
            CountColumn(),
            JobElapsedColumn(),
            DetailColumn(),
            console=console,
            disable=not visible,
            refresh_per_second=REFRESH_PER_SECOND,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self.task_id: TaskID | None = None

    def __enter__(self) -> JobDisplay:
        self.progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.progress.stop()

    def update(self, job: JobObject, source: str) -> None:
        """Show ``job`` (a job object newer than the last one shown; ``source`` says whence)."""
        current, total = job.progress.current, job.progress.total
        if self.trace:
            shown_total = total if total is not None else "?"
            line = f"seq {job.seq} {job.state} {current}/{shown_total} (via {source})"
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)
        if total is None and job.state == JobState.SUCCEEDED:
            total = current = max(current, 1)  # a finished job of unknown size: a full bar, not a pulse
        if self.task_id is None:
            description = f"{job.kind} {job.id[:SHORT_ID_CHARS]}"
            self.task_id = self.progress.add_task(description, total=total, completed=current, job=job)
        else:
            # total=None leaves rich's total as it was: a total once known stays known.
            self.progress.update(self.task_id, total=total, completed=current, job=job)
