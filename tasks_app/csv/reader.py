"""Streaming CSV reader: a binary stream to decoded records, and the rows it could not read.

Pure Python, standard library only (no Django, no pandas), and no column figures: it
hands rows to its caller (``tasks_app.csv.profile`` feeds them to ``ColumnStats``).

The head of the file settles the dialect (``read_csv_head``: binary check, encoding,
UTF-8 BOM, sniffed delimiter); ``physical_lines`` splits the stream into raw lines without
collecting them; ``RowScanner`` decodes each line, parses rows with ``csv.reader``, reads
the header and yields the good data rows, counting and sampling the bad ones. The steps
are public so that ``tasks_app.csv.parts`` reads byte ranges of one file with the very
same code. ``NotCSVError`` says a file is not CSV text we can read.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

__all__ = [
    "MAX_BAD_ROW_SAMPLES",
    "PROGRESS_EVERY_BYTES",
    "SAMPLE_BYTES",
    "CsvHead",
    "NotCSVError",
    "ProgressTicker",
    "Readable",
    "RowScanner",
    "check_bad_rows",
    "physical_lines",
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
    """The rows of a stretch of physical lines, read as ``profile_csv`` reads them.

    ``raw_lines`` yields raw lines (``physical_lines``); they are numbered
    from 1 in ``bad_row_samples``. A line that cannot be decoded is a bad row
    of its own and is not handed to ``csv.reader``; a ``csv.Error`` or a
    field count other than the header's makes the row bad. Blank rows are
    skipped. ``tick``, if given, is called with the bytes of lines read so far
    after each line.

    Either ``read_header()`` (the first non-blank row names the columns) or
    ``start_header(names)`` must come before ``read_rows()``.
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
        self.header: list[str] | None = None  # the column names; None until the header is known
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
                if self.header is None:
                    raise NotCSVError(f"the header is not valid {self.encoding} text: {where}") from None
                self._record_bad(self.lines, f"undecodable bytes for {self.encoding} at byte {exc.start + 1}")
                continue
            if self._row_start is None:
                self._row_start = self.lines
            yield text
        self._at_eof = True

    def start_header(self, names: Iterable[str]) -> list[str]:
        """Take the header as known (``names``): every row read is a data row. Returns the new ``header``."""
        self.header = list(names)
        return self.header

    def read_header(self) -> list[str]:
        """Read up to and including the header row; ``lines``/``bytes`` then end just after it.

        Returns the new ``header``: the column names, one per header field, in order, as written.

        Raises:
            NotCSVError: there is no header row, or it cannot be decoded or parsed.
        """
        while self.header is None:
            self._row_start = None
            try:
                row = next(self._reader)
            except StopIteration:
                raise NotCSVError("empty file: no header row") from None
            except csv.Error as exc:
                raise NotCSVError(f"the header row could not be parsed: {exc}") from None
            if not _is_blank(row):
                self.start_header(row)
        return self.header

    def read_rows(self) -> Iterator[list[str]]:
        """Yield every remaining good data row (as many fields as ``header``), counted in ``rows``.

        Bad rows are counted in ``bad_rows`` (and sampled) instead; blank rows are skipped.
        The rows are read as the iterator is consumed; whatever ``tick`` raises propagates.

        Raises:
            RuntimeError: neither ``read_header()`` nor ``start_header()`` came first (at the call).
        """
        if self.header is None:
            raise RuntimeError("read_header() or start_header() must come first")
        return self._good_rows(len(self.header))

    def _good_rows(self, width: int) -> Iterator[list[str]]:
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
            yield row


def check_bad_rows(*, rows: int, bad_rows: int, encoding: str, delimiter: str) -> None:
    """Raise ``NotCSVError`` when more rows are bad than good (the file is likely not CSV)."""
    if bad_rows > rows:
        raise NotCSVError(
            f"{bad_rows} of {bad_rows + rows} rows could not be read as {encoding} CSV"
            f" with delimiter {delimiter!r}: is this a CSV file?"
        )


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
