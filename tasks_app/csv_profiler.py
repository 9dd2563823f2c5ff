"""Streaming profile of an uploaded CSV file.

Pure Python, standard library only (no Django, no pandas), so it can run
inside a Celery worker on any stream and be tested on its own.

``profile_csv`` reads a binary stream once, line by line, and returns a
JSON-serialisable summary: row counts, unreadable ("bad") rows, and per-column
figures (inferred type, null count, distinct count, numeric min/max/mean).
Memory is bounded by the number of distinct values per column: rows are never
collected into a list.

The figures are meant to agree with what a pandas user sees after
``pandas.read_csv(path)`` with default options (null tokens, ``nunique``,
``min``/``max``/``mean``), for well-formed files.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import math
import re
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

__all__ = [
    "MAX_BAD_ROW_SAMPLES",
    "NULL_TOKENS",
    "PROGRESS_EVERY_BYTES",
    "SAMPLE_BYTES",
    "NotCSVError",
    "profile_csv",
]

# Mirrors pandas' default ``na_values`` for ``read_csv``
# (``pandas._libs.parsers.STR_NA_VALUES``, checked against pandas 3.1.1) so that
# our null counts agree with what a pandas user sees. Kept as a literal copy:
# this module must not import pandas. A field is null only on an exact match.
NULL_TOKENS: frozenset[str] = frozenset(
    {
        "",
        "#N/A",
        "#N/A N/A",
        "#NA",
        "-1.#IND",
        "-1.#QNAN",
        "-NaN",
        "-nan",
        "1.#IND",
        "1.#QNAN",
        "<NA>",
        "N/A",
        "NA",
        "NULL",
        "NaN",
        "None",
        "n/a",
        "nan",
        "null",
    }
)

#: ``on_progress`` is called each time this many more raw bytes have been read.
PROGRESS_EVERY_BYTES: int = 64 * 1024
#: Size in bytes of the head of the file used for the binary check and for
#: sniffing the delimiter.
SAMPLE_BYTES: int = 64 * 1024
#: At most this many bad rows are described in ``bad_row_samples``.
MAX_BAD_ROW_SAMPLES: int = 10

_READ_CHUNK = 64 * 1024
_SNIFF_DELIMITERS = ",;\t|"
_DEFAULT_DELIMITER = ","
_UTF8_BOM = codecs.BOM_UTF8

# ASCII digits only: Python's \d also matches other Unicode digits, which
# pandas does not read as numbers. fullmatch() is used, so no anchors needed.
_INT_RE = re.compile(r"[+-]?[0-9]+")
_FLOAT_RE = re.compile(r"[+-]?([0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)([eE][+-]?[0-9]+)?")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# A date, a "T" or space separator, then at least hours and minutes; the rest
# (seconds, fractions, offset) is left to datetime.fromisoformat to validate.
_DATETIME_PREFIX_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}")
_BOOL_WORDS = frozenset({"true", "false"})


class NotCSVError(ValueError):
    """The file is not CSV text we can profile.

    str(exc) is a short human message shown to the user.
    """


class _ColumnStats:
    """Running figures for one column.

    Type candidates start True and are switched off for good by the first
    non-null value that does not fit. Numeric aggregates are kept only while
    the column can still be integer (exact ``int`` sum/min/max) or float
    (exact float sum as Shewchuk partials, min/max).
    """

    __slots__ = (
        "can_bool",
        "can_date",
        "can_datetime",
        "can_float",
        "can_int",
        "distinct_raw",
        "float_max",
        "float_min",
        "float_partials",
        "float_special",
        "int_max",
        "int_min",
        "int_sum",
        "name",
        "non_null",
        "nulls",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.non_null = 0
        self.nulls = 0
        self.distinct_raw: set[str] = set()
        self.can_int = True
        self.can_float = True
        self.can_bool = True
        self.can_date = True
        self.can_datetime = True
        self.int_sum = 0
        self.int_min: int | None = None
        self.int_max: int | None = None
        self.float_partials: list[float] = []
        self.float_special = 0.0  # sum of the infinite values, kept apart
        self.float_min: float | None = None
        self.float_max: float | None = None

    def add(self, value: str) -> None:
        """Account for one field of a good row."""
        if value in NULL_TOKENS:
            self.nulls += 1
            return
        self.non_null += 1
        self.distinct_raw.add(value)

        if self.can_int:
            if _INT_RE.fullmatch(value):
                n = int(value)
                self.int_sum += n
                if self.int_min is None or n < self.int_min:
                    self.int_min = n
                if self.int_max is None or n > self.int_max:
                    self.int_max = n
            else:
                self.can_int = False
        if self.can_float:
            if _FLOAT_RE.fullmatch(value):
                x = float(value)
                if math.isinf(x):
                    self.float_special += x
                else:
                    _add_partial(self.float_partials, x)
                if self.float_min is None or x < self.float_min:
                    self.float_min = x
                if self.float_max is None or x > self.float_max:
                    self.float_max = x
            else:
                self.can_float = False
                self.float_partials = []
        if self.can_bool and value.lower() not in _BOOL_WORDS:
            self.can_bool = False
        if self.can_date and not _is_date(value):
            self.can_date = False
        if self.can_datetime and not _is_datetime(value):
            self.can_datetime = False

    def column_type(self) -> str:
        """The narrowest type all non-null values fit (integer ⊂ float)."""
        if self.non_null == 0:
            return "empty"
        if self.can_int:
            return "integer"
        if self.can_float:
            return "float"
        if self.can_bool:
            return "boolean"
        if self.can_date:
            return "date"
        if self.can_datetime:
            return "datetime"
        return "string"

    def summary(self) -> dict[str, Any]:
        """The column's figures as a JSON-serialisable dict."""
        kind = self.column_type()
        distinct: int
        minimum: int | float | None = None
        maximum: int | float | None = None
        mean: float | None = None
        if kind == "integer":
            distinct = len({int(v) for v in self.distinct_raw})
            minimum, maximum = self.int_min, self.int_max
            mean = self.int_sum / self.non_null  # int / int: correctly rounded
        elif kind == "float":
            distinct = len({float(v) for v in self.distinct_raw})
            minimum, maximum = self.float_min, self.float_max
            total = math.fsum(self.float_partials)
            if self.float_special:
                total += self.float_special
            mean = total / self.non_null
        elif kind == "boolean":
            distinct = len({v.lower() for v in self.distinct_raw})
        else:
            distinct = len(self.distinct_raw)
        return {
            "name": self.name,
            "type": kind,
            "non_null": self.non_null,
            "nulls": self.nulls,
            "distinct": distinct,
            "min": minimum,
            "max": maximum,
            "mean": mean,
        }


def _add_partial(partials: list[float], x: float) -> None:
    """Add finite ``x`` to a list of non-overlapping partial sums, exactly.

    Shewchuk's algorithm (the one behind ``math.fsum``), run incrementally so
    values need not be kept; ``math.fsum(partials)`` gives the rounded total.
    """
    i = 0
    for y in partials:
        if abs(x) < abs(y):
            x, y = y, x
        hi = x + y
        lo = y - (hi - x)
        if lo:
            partials[i] = lo
            i += 1
        x = hi
    partials[i:] = [x]


def _is_date(value: str) -> bool:
    if not _DATE_RE.fullmatch(value):
        return False
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_datetime(value: str) -> bool:
    if not _DATETIME_PREFIX_RE.match(value):
        return False
    try:
        dt.datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _read_head(fileobj: BinaryIO, n: int) -> bytes:
    """Read up to ``n`` bytes, looping over short reads; fewer only at EOF."""
    pieces: list[bytes] = []
    remaining = n
    while remaining > 0:
        chunk = fileobj.read(remaining)
        if not chunk:
            break
        pieces.append(chunk)
        remaining -= len(chunk)
    return b"".join(pieces)


def _physical_lines(fileobj: BinaryIO, head: bytes) -> Iterator[bytes]:
    """Yield raw lines (each ending in b"\\n" except maybe the last).

    ``head`` is what was already read from the stream; reading resumes after
    it. Splits on b"\\n" only, whatever the stream's own line iteration does.
    """
    pending: list[bytes] = []
    chunk = head
    while chunk:
        parts = chunk.split(b"\n")
        if len(parts) > 1:
            pending.append(parts[0])
            yield b"".join(pending) + b"\n"
            for part in parts[1:-1]:
                yield part + b"\n"
            pending = []
        if parts[-1]:
            pending.append(parts[-1])
        chunk = fileobj.read(_READ_CHUNK)
    if pending:
        yield b"".join(pending)


def _is_utf8(encoding: str) -> bool:
    return codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")


def _sniff_delimiter(head: bytes, *, at_eof: bool, encoding: str) -> str:
    """Guess the delimiter among ``,;\\t|`` from the head; "," if unsure."""
    sample = head
    if not at_eof:
        # Drop the last, probably cut, line (keep it if it is the only one).
        cut = sample.rfind(b"\n")
        if cut > 0:
            sample = sample[: cut + 1]
    text = sample.decode(encoding, errors="replace")
    try:
        return csv.Sniffer().sniff(text, delimiters=_SNIFF_DELIMITERS).delimiter
    except csv.Error:
        return _DEFAULT_DELIMITER


def _is_blank(row: list[str]) -> bool:
    # csv.reader gives [] for an empty line; like pandas' skip_blank_lines,
    # a whitespace-only line is blank too.
    return not row or (len(row) == 1 and not row[0].strip())


def profile_csv(
    fileobj: BinaryIO,
    *,
    size: int,
    encoding: str = "utf-8",
    delimiter: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Profile a CSV file read from a binary stream, in one streaming pass.

    Args:
        fileobj: readable binary stream positioned at the start of the file;
            only ``read()`` is used (no seeking), and it is not closed.
        size: total size of the file in bytes, used for progress reports and
            reported back as ``"bytes"``.
        encoding: text encoding of the file; it must be ASCII-compatible
            (utf-8, latin-1, cp1252, ...). With utf-8 a leading BOM is
            dropped. Each physical line is decoded strictly.
        delimiter: one-character field delimiter; ``None`` sniffs it among
            ``, ; TAB |`` on the first ``SAMPLE_BYTES`` bytes, falling back
            to ``","``.
        on_progress: called as ``on_progress(bytes_read, size)`` each time
            another ``PROGRESS_EVERY_BYTES`` bytes of lines have been read
            (``bytes_read`` is clamped to ``size``, so it never decreases and
            never exceeds it), then once as ``(size, size)`` at the end.
            Whatever it raises (e.g. a cancellation) propagates unchanged.

    The first non-blank row is the header (names kept as written). Blank
    lines are skipped. A data row is bad, and left out of every figure, when
    one of its lines cannot be decoded, the csv module cannot parse it, or its
    field count differs from the header's. A field is null when it is exactly
    one of ``NULL_TOKENS``.

    Returns:
        A JSON-serialisable dict::

            {
              "rows": int,              # good data rows (header excluded)
              "bad_rows": int,
              "bad_row_samples": [      # the first MAX_BAD_ROW_SAMPLES
                  {"line": int,         # 1-based physical line the row starts on
                   "reason": str}, ...],
              "columns": [              # in header order
                  {"name": str,
                   "type": "integer" | "float" | "boolean" | "date"
                           | "datetime" | "string" | "empty",
                   "non_null": int, "nulls": int,
                   "distinct": int,     # distinct non-null values
                   "min": int | float | None,   # numeric columns only:
                   "max": int | float | None,   # int for "integer",
                   "mean": float | None},       # float for "float"
                  ...],
              "delimiter": str,
              "encoding": str,          # as given
              "bytes": int,             # = size
            }

    Raises:
        NotCSVError: the head holds NUL bytes (binary file); there is no
            header row; the header cannot be decoded or parsed; or more rows
            are bad than good.
        ValueError: ``encoding`` is not ASCII-compatible (e.g. utf-16).
        LookupError: ``encoding`` is unknown.
    """
    probe = b'\n\r,;\t|"'
    try:
        compatible = probe.decode(encoding) == probe.decode("ascii")
    except UnicodeDecodeError:
        compatible = False
    if not compatible:
        raise ValueError(f"encoding {encoding!r} is not ASCII-compatible")
    utf8 = _is_utf8(encoding)
    decode_as = "utf-8" if utf8 else encoding

    head = _read_head(fileobj, SAMPLE_BYTES)
    if b"\x00" in head:
        raise NotCSVError("binary content (NUL bytes): not a CSV text file")
    if utf8 and head.startswith(_UTF8_BOM):
        head = head[len(_UTF8_BOM) :]
        bom_bytes = len(_UTF8_BOM)
    else:
        bom_bytes = 0

    if delimiter is None:
        delimiter = _sniff_delimiter(head, at_eof=len(head) + bom_bytes < SAMPLE_BYTES, encoding=decode_as)

    bad_rows = 0
    bad_samples: list[dict[str, Any]] = []

    def record_bad(line: int, reason: str) -> None:
        nonlocal bad_rows
        bad_rows += 1
        if len(bad_samples) < MAX_BAD_ROW_SAMPLES:
            bad_samples.append({"line": line, "reason": reason})

    # Shared with the line generator below: physical line number where the
    # row csv.reader is currently assembling began (None between rows).
    row_start: int | None = None
    header_seen = False

    def text_lines() -> Iterator[str]:
        nonlocal row_start
        bytes_read = bom_bytes
        next_report = PROGRESS_EVERY_BYTES
        for number, raw in enumerate(_physical_lines(fileobj, head), start=1):
            bytes_read += len(raw)
            if on_progress is not None and bytes_read >= next_report:
                on_progress(min(bytes_read, size), size)
                done_blocks = bytes_read // PROGRESS_EVERY_BYTES
                next_report = (done_blocks + 1) * PROGRESS_EVERY_BYTES
            try:
                text = raw.decode(decode_as)
            except UnicodeDecodeError as exc:
                where = f"{exc.reason} at byte {exc.start + 1}"
                if not header_seen:
                    raise NotCSVError(f"the header is not valid {encoding} text: {where}") from None
                record_bad(number, f"undecodable bytes for {encoding} at byte {exc.start + 1}")
                continue
            if row_start is None:
                row_start = number
            yield text

    reader = csv.reader(text_lines(), delimiter=delimiter)
    columns: list[_ColumnStats] = []
    width = 0
    rows = 0
    while True:
        row_start = None
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            if not header_seen:
                raise NotCSVError(f"the header row could not be parsed: {exc}") from None
            record_bad(row_start or reader.line_num, f"unparsable row: {exc}")
            continue
        if _is_blank(row):
            continue
        if not header_seen:
            header_seen = True
            columns = [_ColumnStats(name) for name in row]
            width = len(row)
            continue
        if len(row) != width:
            record_bad(row_start or reader.line_num, f"expected {width} fields, got {len(row)}")
            continue
        rows += 1
        for stats, value in zip(columns, row, strict=True):
            stats.add(value)

    if not header_seen:
        raise NotCSVError("empty file: no header row")
    if bad_rows > rows:
        raise NotCSVError(
            f"{bad_rows} of {bad_rows + rows} rows could not be read as {encoding} CSV"
            f" with delimiter {delimiter!r}: is this a CSV file?"
        )
    if on_progress is not None:
        on_progress(size, size)

    return {
        "rows": rows,
        "bad_rows": bad_rows,
        "bad_row_samples": bad_samples,
        "columns": [stats.summary() for stats in columns],
        "delimiter": delimiter,
        "encoding": encoding,
        "bytes": size,
    }
