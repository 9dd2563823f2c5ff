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

The steps (reading the head, scanning rows, building the result) are public so
that ``tasks_app.csv.parts`` profiles byte ranges of one file with the very
same code and merges them into the very same result.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

from tasks_app.csv.columns import NULL_TOKENS, ColumnStats

__all__ = [
    "MAX_BAD_ROW_SAMPLES",
    "NULL_TOKENS",
    "PROGRESS_EVERY_BYTES",
    "SAMPLE_BYTES",
    "CsvHead",
    "NotCSVError",
    "ProgressTicker",
    "Readable",
    "RowScanner",
    "check_bad_rows",
    "physical_lines",
    "profile_csv",
    "profile_result",
    "read_csv_head",
]

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
# The bytes whose meaning the reader relies on; an encoding must decode them as ASCII does.
_ASCII_PROBE = b'\n\r,;\t|"'


class Readable(Protocol):
    """A binary stream as far as reading lines needs: ``read(n)`` gives at most ``n`` bytes, b"" at the end."""

    def read(self, n: int = -1, /) -> bytes: ...


class NotCSVError(ValueError):
    """The file is not CSV text we can profile.

    str(exc) is a short human message shown to the user.
    """


@dataclass(frozen=True)
class CsvHead:
    """What the head of a file decides: how to decode it and how to split fields.

    ``head`` is the first ``SAMPLE_BYTES`` bytes of the stream (fewer at EOF)
    with a UTF-8 BOM removed; ``bom_bytes`` is 3 when one was removed, else 0.
    ``decode_as`` is the codec each line is decoded with ("utf-8" for any
    UTF-8 spelling, so a BOM is never stripped twice); ``encoding`` is as given.
    """

    head: bytes
    bom_bytes: int
    encoding: str
    decode_as: str
    delimiter: str

    @classmethod
    def settled(cls, *, encoding: str, delimiter: str) -> CsvHead:
        """The dialect of a file whose head was already read: for lines read from elsewhere in it."""
        decode_as = "utf-8" if _is_utf8(encoding) else encoding
        return cls(head=b"", bom_bytes=0, encoding=encoding, decode_as=decode_as, delimiter=delimiter)


def read_csv_head(fileobj: BinaryIO, *, encoding: str, delimiter: str | None) -> CsvHead:
    """Read the head of ``fileobj`` (``read()`` only), check it is text, and settle the dialect.

    ``delimiter=None`` sniffs it among ``, ; TAB |`` on the head, falling back to ``","``.

    Raises:
        NotCSVError: the head holds NUL bytes (binary file).
        ValueError: ``encoding`` is not ASCII-compatible (e.g. utf-16).
        LookupError: ``encoding`` is unknown.
    """
    try:
        compatible = _ASCII_PROBE.decode(encoding) == _ASCII_PROBE.decode("ascii")
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
    return CsvHead(head=head, bom_bytes=bom_bytes, encoding=encoding, decode_as=decode_as, delimiter=delimiter)


class ProgressTicker:
    """Calls ``on_progress(done, total)`` each time another ``PROGRESS_EVERY_BYTES`` bytes are read.

    ``done`` is ``offset`` plus the bytes reported to ``tick``, clamped to
    ``total``, so it never decreases and never exceeds it. ``finish`` reports
    ``(total, total)``. Whatever ``on_progress`` raises propagates.
    """

    def __init__(self, on_progress: Callable[[int, int], None], *, offset: int, total: int) -> None:
        self._on_progress = on_progress
        self._offset = offset
        self._total = total
        self._next_report = PROGRESS_EVERY_BYTES

    def tick(self, bytes_read: int) -> None:
        """``bytes_read`` bytes of lines have now been read in all (after ``offset``)."""
        done = self._offset + bytes_read
        if done >= self._next_report:
            self._on_progress(min(done, self._total), self._total)
            done_blocks = done // PROGRESS_EVERY_BYTES
            self._next_report = (done_blocks + 1) * PROGRESS_EVERY_BYTES

    def finish(self) -> None:
        """Report the end: ``(total, total)``."""
        self._on_progress(self._total, self._total)


class RowScanner:
    """The rows of a stretch of physical lines, profiled as ``profile_csv`` does.

    ``raw_lines`` yields raw lines (``physical_lines``); they are numbered
    from 1 in ``bad_row_samples``. A line that cannot be decoded is a bad row
    of its own and is not handed to ``csv.reader``; a ``csv.Error`` or a
    field count other than the header's makes the row bad. Blank rows are
    skipped. ``tick``, if given, is called with the bytes of lines read so far
    after each line.

    Either ``read_header()`` (the first non-blank row names the columns) or
    ``start_columns(names)`` must come before ``read_rows()``.
    """

    def __init__(
        self,
        raw_lines: Iterable[bytes],
        head: CsvHead,
        *,
        tick: Callable[[int], None] | None = None,
    ) -> None:
        self.encoding = head.encoding
        self.lines = 0  # physical lines read so far
        self.bytes = 0  # their length in bytes
        self.rows = 0
        self.bad_rows = 0
        self.bad_samples: list[dict[str, Any]] = []
        self.columns: list[ColumnStats] | None = None  # None until the header is known
        #: True when the input ended inside a row (in a quoted field): ``csv.reader``
        #: then ends that row with whatever it has read.
        self.open_at_end = False
        self._raw_lines = iter(raw_lines)
        self._decode_as = head.decode_as
        self._tick = tick
        # Physical line where the row csv.reader is assembling began (None between rows).
        self._row_start: int | None = None
        self._at_eof = False
        self._reader = csv.reader(self._text_lines(), delimiter=head.delimiter)

    def _record_bad(self, line: int, reason: str) -> None:
        self.bad_rows += 1
        if len(self.bad_samples) < MAX_BAD_ROW_SAMPLES:
            self.bad_samples.append({"line": line, "reason": reason})

    def _text_lines(self) -> Iterator[str]:
        for raw in self._raw_lines:
            self.lines += 1
            self.bytes += len(raw)
            if self._tick is not None:
                self._tick(self.bytes)
            try:
                text = raw.decode(self._decode_as)
            except UnicodeDecodeError as exc:
                where = f"{exc.reason} at byte {exc.start + 1}"
                if self.columns is None:
                    raise NotCSVError(f"the header is not valid {self.encoding} text: {where}") from None
                self._record_bad(self.lines, f"undecodable bytes for {self.encoding} at byte {exc.start + 1}")
                continue
            if self._row_start is None:
                self._row_start = self.lines
            yield text
        self._at_eof = True

    def start_columns(self, names: Iterable[str]) -> list[ColumnStats]:
        """Take the header as known (``names``): every row read is a data row. Returns the new ``columns``."""
        self.columns = [ColumnStats(name) for name in names]
        return self.columns

    def read_header(self) -> list[ColumnStats]:
        """Read up to and including the header row; ``lines``/``bytes`` then end just after it.

        Returns the new ``columns``, one per header field, in order.

        Raises:
            NotCSVError: there is no header row, or it cannot be decoded or parsed.
        """
        while self.columns is None:
            self._row_start = None
            try:
                row = next(self._reader)
            except StopIteration:
                raise NotCSVError("empty file: no header row") from None
            except csv.Error as exc:
                raise NotCSVError(f"the header row could not be parsed: {exc}") from None
            if not _is_blank(row):
                self.start_columns(row)
        return self.columns

    def read_rows(self) -> None:
        """Read every remaining row into ``rows``, ``bad_rows`` and the column figures."""
        columns = self.columns
        if columns is None:
            raise RuntimeError("read_header() or start_columns() must come first")
        width = len(columns)
        reader = self._reader
        while True:
            self._row_start = None
            was_at_eof = self._at_eof
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                self._record_bad(self._row_start or reader.line_num, f"unparsable row: {exc}")
                continue
            if self._at_eof and not was_at_eof:
                self.open_at_end = True
            if _is_blank(row):
                continue
            if len(row) != width:
                self._record_bad(self._row_start or reader.line_num, f"expected {width} fields, got {len(row)}")
                continue
            self.rows += 1
            for stats, value in zip(columns, row, strict=True):
                stats.add(value)


def check_bad_rows(*, rows: int, bad_rows: int, encoding: str, delimiter: str) -> None:
    """Raise ``NotCSVError`` when more rows are bad than good (the file is likely not CSV)."""
    if bad_rows > rows:
        raise NotCSVError(
            f"{bad_rows} of {bad_rows + rows} rows could not be read as {encoding} CSV"
            f" with delimiter {delimiter!r}: is this a CSV file?"
        )


def profile_result(
    *,
    rows: int,
    bad_rows: int,
    bad_samples: list[dict[str, Any]],
    columns: list[ColumnStats],
    delimiter: str,
    encoding: str,
    size: int,
) -> dict[str, Any]:
    """The result dict of ``profile_csv`` (shape documented there) from the figures."""
    return {
        "rows": rows,
        "bad_rows": bad_rows,
        "bad_row_samples": bad_samples,
        "columns": [stats.summary() for stats in columns],
        "delimiter": delimiter,
        "encoding": encoding,
        "bytes": size,
    }


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


def physical_lines(fileobj: Readable, head: bytes = b"") -> Iterator[bytes]:
    """Yield raw lines (each ending in b"\\n" except maybe the last).

    ``head`` is what was already read from the stream; reading resumes after
    it, ``_READ_CHUNK`` bytes at a time until ``read()`` gives b"". Splits on
    b"\\n" only, whatever the stream's own line iteration does.
    """
    pending: list[bytes] = []
    chunk = head or fileobj.read(_READ_CHUNK)
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
    head = read_csv_head(fileobj, encoding=encoding, delimiter=delimiter)
    ticker = None if on_progress is None else ProgressTicker(on_progress, offset=head.bom_bytes, total=size)
    scanner = RowScanner(physical_lines(fileobj, head.head), head, tick=None if ticker is None else ticker.tick)
    columns = scanner.read_header()
    scanner.read_rows()
    check_bad_rows(rows=scanner.rows, bad_rows=scanner.bad_rows, encoding=encoding, delimiter=head.delimiter)
    if ticker is not None:
        ticker.finish()
    return profile_result(
        rows=scanner.rows,
        bad_rows=scanner.bad_rows,
        bad_samples=scanner.bad_samples,
        columns=columns,
        delimiter=head.delimiter,
        encoding=encoding,
        size=size,
    )
