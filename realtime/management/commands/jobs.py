"""``manage.py jobs``: start, watch and cancel jobs from a terminal.

::

    manage.py jobs start KIND [--param K=V ...] [--params-json OBJECT] [--user USERNAME]
                              [--idempotency-key KEY] [--watch] [--json]
    manage.py jobs watch JOB_ID [--user USERNAME] [--json]
    manage.py jobs cancel JOB_ID [--user USERNAME] [--watch] [--json]

``start`` goes through ``tasks_app.services.job_start``, the service the WebSocket consumer
uses, and prints the job id. Watching is fed by the channel layer, like a socket, through
``realtime.follower.watch_job`` (group first, then the snapshot, then live events with the
highest ``seq`` kept, the snapshot again after ``RESYNC_AFTER_S`` of silence); the bar is
``realtime.watchdisplay``. Every job object shown or printed is a
``tasks_app.jobobject.JobObject``.

(Just over ~350 lines: the command line, its exit statuses and its messages; the following
and the display, which it used to hold too, are the two modules above.)

Output: the live progress bar goes to stderr (``-v 0`` hides it, ``-v 2`` also traces every
frame taken: ``manage.py jobs -v 2 watch JOB_ID``). Stdout stays plain and parseable:
``start`` prints the job id, a watch that succeeds prints ``result: <JSON>`` on one line;
with ``--json`` stdout holds only one job object as JSON. A failed job ends with
``error: <text>`` on stderr.

Exit status: ``EXIT_SUCCEEDED`` 0 (job succeeded, or started/cancel asked without
``--watch``), ``EXIT_FAILED`` 1, ``EXIT_CANCELLED`` 2, ``EXIT_REFUSED`` 3 (unknown user,
``unknown_kind``, ``invalid_params``, ``not_found``, ``rate_limited``, ``not_cancellable``:
nothing was done), ``EXIT_USAGE`` 64 (bad command line; not argparse's 2, which means
cancelled here), ``EXIT_UNAVAILABLE`` 69 (Redis or the database does not answer: is the stack
running?), ``EXIT_INTERRUPTED`` 130 (Ctrl-C: watching stops, the job keeps running;
stop it with ``manage.py jobs cancel JOB_ID``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import IO, Any, Final, NoReturn, cast

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper
from django.db import DatabaseError
from redis.exceptions import RedisError
from rich.console import Console

from realtime import messaging
from realtime.follower import RESYNC_AFTER_S, watch_job
from realtime.watchdisplay import JobDisplay
from tasks_app import selectors, services
from tasks_app.errors import ApplicationError, InvalidParams
from tasks_app.jobobject import JobObject
from tasks_app.states import JobState

#: Exit statuses (module docstring).
EXIT_SUCCEEDED: Final = 0
EXIT_FAILED: Final = 1
EXIT_CANCELLED: Final = 2
EXIT_REFUSED: Final = 3
EXIT_USAGE: Final = 64  # sysexits.h EX_USAGE
EXIT_UNAVAILABLE: Final = 69  # sysexits.h EX_UNAVAILABLE: Redis or the database does not answer
EXIT_INTERRUPTED: Final = 130  # 128 + SIGINT, what shells report for Ctrl-C

EXIT_FOR_FINAL_STATE: Final[dict[str, int]] = {
    JobState.SUCCEEDED: EXIT_SUCCEEDED,
    JobState.FAILED: EXIT_FAILED,
    JobState.CANCELLED: EXIT_CANCELLED,
}

#: Columns rich may use when stderr is not a terminal (rich would wrap at 80).
NON_TERMINAL_WIDTH: Final = 200

VERBOSITY_QUIET: Final = 0
VERBOSITY_TRACE: Final = 2


# --- command line -------------------------------------------------------------------------


def parse_param(text: str) -> tuple[str, Any]:
    """``"K=V"`` → ``(K, V)``; V is parsed as JSON when it parses (``5``, ``true``, ``{"a": 1}``),
    else kept as the string. Raises ``CommandError`` (``EXIT_USAGE``) without ``=`` or a key."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise CommandError(f"--param {text!r}: expected KEY=VALUE", returncode=EXIT_USAGE)
    try:
        return key, json.loads(raw)
    except ValueError:
        return key, raw


def parse_params(pairs: Iterable[str], params_json: str | None) -> dict[str, Any]:
    """The job's parameters: the ``--params-json`` object, then every ``--param K=V`` over it
    (a later K wins). Raises ``CommandError`` (``EXIT_USAGE``) for JSON that is not an object."""
    params: dict[str, Any] = {}
    if params_json is not None:
        try:
            loaded = json.loads(params_json)
        except ValueError as exc:
            raise CommandError(f"--params-json is not valid JSON: {exc}", returncode=EXIT_USAGE) from None
        if not isinstance(loaded, dict):
            raise CommandError("--params-json must be a JSON object, e.g. '{\"step\": 5}'", returncode=EXIT_USAGE)
        params.update(loaded)
    params.update(parse_param(pair) for pair in pairs)
    return params


def describe_error(exc: ApplicationError) -> str:
    """``"<code>: <message>"``, then one ``"  <field>: <message>"`` line per field message of
    ``InvalidParams``: what the WebSocket's ``error`` frame says, as text."""
    lines = [f"{exc.code}: {exc.message}"]
    if isinstance(exc, InvalidParams):
        for name, messages in sorted(exc.fields.items()):
            lines.extend(f"  {name}: {message}" for message in messages)
    return "\n".join(lines)


class JobsParser(CommandParser):
    """Django's parser, except that usage errors exit ``EXIT_USAGE``: argparse's own 2 is
    ``EXIT_CANCELLED`` for this command."""

    def error(self, message: str) -> NoReturn:
        if self.called_from_command_line:
            self.print_usage(sys.stderr)
            self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")
        super().error(message)  # raises CommandError (call_command)
        raise AssertionError("unreachable")


# --- the terminal as a rich stream ------------------------------------------------------


class _RawStream:
    """A Django ``OutputWrapper`` as a plain text stream for rich: no added newline, no style."""

    def __init__(self, wrapper: OutputWrapper) -> None:
        self._wrapper = wrapper

    def write(self, text: str) -> int:
        self._wrapper.write(text, style_func=_unstyled, ending="")
        return len(text)

    def flush(self) -> None:
        self._wrapper.flush()

    def isatty(self) -> bool:
        return self._wrapper.isatty()

    @property
    def encoding(self) -> str:
        return str(getattr(self._wrapper, "encoding", None) or "utf-8")


def _unstyled(text: str) -> str:
    return text


# --- the command ----------------------------------------------------------------------------


#: Loggers whose INFO lines (``job … created``) would land above the bar on stderr.
QUIETED_LOGGERS: Final = ("tasks_app", "realtime")


@contextlib.contextmanager
def quiet_logs(quiet: bool) -> Iterator[None]:
    """While the command runs, keep the project's INFO log lines off stderr (the bar's place)
    unless ``-v 2``; warnings still show. Restores the loggers' levels afterwards."""
    loggers = [logging.getLogger(name) for name in QUIETED_LOGGERS]
    levels = [lg.level for lg in loggers]
    if quiet:
        for lg in loggers:
            lg.setLevel(max(logging.WARNING, lg.getEffectiveLevel()))
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


class Command(BaseCommand):
    help = (
        "Start, watch and cancel jobs from a terminal (live progress over the channel layer). "
        "Exit status: 0 succeeded, 1 failed, 2 cancelled, 3 refused (unknown user or kind, "
        "invalid parameters, not found, rate limited), 64 usage, 130 Ctrl-C (the job keeps "
        "running; 'jobs cancel JOB_ID' stops it)."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        # Django instantiates CommandParser itself; JobsParser only changes error()'s exit status.
        parser.__class__ = JobsParser
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(
            dest="action", required=True, metavar="{start,watch,cancel}", parser_class=JobsParser
        )

        start = actions.add_parser("start", help="Start a job and print its id.")
        start.add_argument("kind", metavar="KIND", help="Job kind, e.g. simulated or csv_profile.")
        start.add_argument(
            "--param",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="One parameter; VALUE is JSON when it parses (step=5, fail=true), else a string. Repeatable.",
        )
        start.add_argument("--params-json", metavar="OBJECT", help="Parameters as one JSON object (--param wins).")
        start.add_argument("--idempotency-key", metavar="KEY", help="Starting again with this key returns the job.")
        start.add_argument("--watch", action="store_true", help="Then watch it until it ends.")

        watch = actions.add_parser("watch", help="Watch a job until it ends.")
        watch.add_argument("job_id", metavar="JOB_ID")

        cancel = actions.add_parser("cancel", help="Ask for a job to be cancelled.")
        cancel.add_argument("job_id", metavar="JOB_ID")
        cancel.add_argument("--watch", action="store_true", help="Then watch it until it ends.")
        for subparser in (start, watch, cancel):
            subparser.add_argument(
                "--user",
                default=None,
                metavar="USERNAME",
                help="Act as this user (default: settings.DEMO_USERNAME).",
            )
            subparser.add_argument(
                "--json",
                action="store_true",
                help="Print only a job object as JSON on stdout (the final one when watching).",
            )

    def handle(self, *args: Any, **options: Any) -> None:
        """Run one subcommand (``options["action"]``: ``start``, ``watch`` or ``cancel``).

        Returns normally for ``EXIT_SUCCEEDED``; raises ``SystemExit`` with ``EXIT_FAILED``,
        ``EXIT_CANCELLED`` or ``EXIT_INTERRUPTED`` after a watch, and ``CommandError`` with
        ``returncode`` ``EXIT_REFUSED`` (an ``ApplicationError`` as ``"<code>: <message>"``,
        field messages on the lines below) or ``EXIT_USAGE``.
        """
        with quiet_logs(int(options["verbosity"]) < VERBOSITY_TRACE):
            self._handle(options)

    def _handle(self, options: dict[str, Any]) -> None:
        if not settings.REDIS.answers():
            raise CommandError(
                f"Redis does not answer at {settings.REDIS.describe()}: is the stack running (make run)? In another"
                " shell of the clone the settings come from the .env that make run writes",
                returncode=EXIT_UNAVAILABLE,
            )
        try:
            owner = self._owner(options["user"])
            if options["action"] == "start":
                job = services.job_start(
                    owner=owner,
                    kind=options["kind"],
                    params=parse_params(options["param"], options["params_json"]),
                    idempotency_key=options["idempotency_key"],
                )
            elif options["action"] == "cancel":
                job = services.job_cancel(owner=owner, job_id=options["job_id"])
            else:
                job = selectors.job_get(owner=owner, job_id=options["job_id"])
            snapshot = selectors.job_object(job)
            if options["action"] == "watch" or options.get("watch"):
                if not options["json"]:
                    self._announce(options["action"], snapshot)
                final = self._watch(owner, snapshot, options)
                self._report(final, as_json=options["json"])
            elif options["json"]:
                self.stdout.write(snapshot.model_dump_json())
            else:
                self._announce(options["action"], snapshot)
        except ApplicationError as exc:
            raise CommandError(describe_error(exc), returncode=EXIT_REFUSED) from exc
        except DatabaseError as exc:
            raise CommandError(
                f"the database cannot be used ({exc}); has make run (or manage.py migrate) set it up?",
                returncode=EXIT_UNAVAILABLE,
            ) from None
        except RedisError as exc:
            raise CommandError(f"lost Redis while watching: {exc}", returncode=EXIT_UNAVAILABLE) from None

    def _owner(self, username: str | None) -> User:
        username = username or settings.DEMO_USERNAME
        try:
            return get_user_model().objects.get(username=username)
        except get_user_model().DoesNotExist:
            raise CommandError(
                f"no user {username!r} (--user; the default is DEMO_USERNAME)", returncode=EXIT_REFUSED
            ) from None

    def _announce(self, action: str, job: JobObject) -> None:
        if action == "start":
            self.stdout.write(job.id)
        elif action == "cancel":
            self.stdout.write(f"{job.id} {job.state}")

    def _console(self, options: dict[str, Any]) -> Console:
        console = Console(
            file=cast(IO[str], _RawStream(self.stderr)),
            no_color=bool(options.get("no_color")),
            force_terminal=True if options.get("force_color") else None,
        )
        if not console.is_terminal:
            # A log file has no width: keep the final progress line on one line.
            console.width = NON_TERMINAL_WIDTH
        return console

    def _watch(self, owner: User, job: JobObject, options: dict[str, Any]) -> JobObject:
        """Watch until final; Ctrl-C stops watching (``EXIT_INTERRUPTED``), not the job."""
        verbosity = int(options["verbosity"])
        console = self._console(options)
        try:
            with JobDisplay(console, visible=verbosity > VERBOSITY_QUIET, trace=verbosity >= VERBOSITY_TRACE) as shown:
                if verbosity >= VERBOSITY_TRACE:
                    group = messaging.job_group(job.id)
                    console.print(f"watching job {job.id} (group {group})", markup=False, soft_wrap=True)
                return asyncio.run(watch_owned_job(owner, job.id, shown.update))
        except KeyboardInterrupt:
            self.stderr.write(
                f"stopped watching; job {job.id} keeps running (stop it with: manage.py jobs cancel {job.id})",
                style_func=_unstyled,
            )
            raise SystemExit(EXIT_INTERRUPTED) from None

    def _report(self, job: JobObject, *, as_json: bool) -> None:
        """Final lines: stdout ``result: <JSON>`` (or the job as JSON), stderr the failure;
        then the exit status of the final state."""
        if as_json:
            self.stdout.write(job.model_dump_json())
        elif job.state == JobState.SUCCEEDED:
            self.stdout.write(f"result: {json.dumps(job.result)}")
        if job.state == JobState.FAILED:
            self.stderr.write(f"error: {job.error or 'the job failed'}")
        elif job.state == JobState.CANCELLED:
            current, total = job.progress.current, job.progress.total
            self.stderr.write(f"cancelled: job {job.id} was cancelled at {current}/{total}", style_func=_unstyled)
        status = EXIT_FOR_FINAL_STATE[job.state]
        if status != EXIT_SUCCEEDED:
            raise SystemExit(status)


async def watch_owned_job(
    owner: User,
    job_id: str,
    on_update: Callable[[JobObject, str], None],
    resync_after_s: float = RESYNC_AFTER_S,
) -> JobObject:
    """``realtime.follower.watch_job`` on the configured channel layer, reading ``owner``'s
    job from the database; raises ``CommandError`` without a channel layer."""
    layer = get_channel_layer()
    if layer is None:
        raise CommandError("no channel layer is configured (settings.CHANNEL_LAYERS)")

    def read() -> dict[str, Any]:
        return selectors.job_snapshot(selectors.job_get(owner=owner, job_id=job_id))

    read_snapshot: Callable[[], Awaitable[dict[str, Any]]] = database_sync_to_async(read)
    return await watch_job(
        layer=layer, job_id=job_id, read_snapshot=read_snapshot, on_update=on_update, resync_after_s=resync_after_s
    )
