"""One CSV profile in parts: split a file into byte ranges, profile each apart, merge the partials.

Pure Python, standard library only, like ``tasks_app.csv.profile`` whose
steps (and the reader's) it reuses. The three calls of a parallel profile::

    plan = plan_csv_parts(fh, size=size, parts=4)            # once, reads the file's quotes
    partials = [profile_csv_part(fh_i, plan, i) for i in range(len(plan.ranges))]  # anywhere
    result = merge_csv_parts(plan, partials)                 # == profile_csv(fh, size=size)

``plan.to_dict()``, each partial and the result are plain JSON, so they can
travel as task arguments and results between processes.

Ranges start at record boundaries found by quote parity (RFC 4180, section 2:
a field holding a line break is enclosed in double quotes, and a quote inside
it is doubled, so a line break is outside every field exactly when an even
number of quote characters precede it in the data). ``csv.reader`` reads some
malformed files otherwise (a stray quote inside an unquoted field is kept as
a character); each part therefore reports whether its range ended inside a
row, and ``merge_csv_parts`` refuses (``CsvPartsMismatchError``) rather than
return figures that would differ from ``profile_csv``'s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

from tasks_app.csv.columns import ColumnStats
from tasks_app.csv.profile import add_rows, profile_result
from tasks_app.csv.reader import (
    MAX_BAD_ROW_SAMPLES,
    CsvHead,
    ProgressTicker,
    RowScanner,
    check_bad_rows,
    physical_lines,
    read_csv_head,
)

__all__ = [
    "SCAN_CHUNK_BYTES",
    "CsvPartsMismatchError",
    "CsvPlan",
    "merge_csv_parts",
    "plan_csv_parts",
    "profile_csv_part",
]

#: The boundary scan reads the data this many bytes at a time.
SCAN_CHUNK_BYTES: int = 1024 * 1024

_QUOTE = b'"'  # csv.reader's default quotechar, which profile_csv uses
_NEWLINE = b"\n"  # profile_csv splits lines on b"\n" only


class CsvPartsMismatchError(Exception):
    """The partial profiles cannot be merged into exactly what ``profile_csv`` gives.

    A range ended inside a row as ``csv.reader`` reads this file, so the next
    range did not start at a record boundary: the file's quoting is not RFC 4180
    (e.g. an odd number of quotes inside an unquoted field). Profile the whole
    file with ``profile_csv`` instead.
    """


@dataclass(frozen=True)
class CsvPlan:
    """How one CSV file is cut into parts; built by ``plan_csv_parts``.

    Attributes:
        size: the file's size in bytes, as given to ``plan_csv_parts``.
        encoding: as given; ``delimiter``: as given or sniffed.
        header: the column names, in order.
        header_lines: physical lines up to and including the header row
            (blank lines before it count).
        ranges: ``(start, end)`` byte offsets into the file, half-open,
            contiguous, from the first byte after the header to ``size``; each
            starts at a record boundary and none is empty, except the single
            range ``(size, size)`` of a file with nothing after its header.
    """

    size: int
    encoding: str
    delimiter: str
    header: tuple[str, ...]
    header_lines: int
    ranges: tuple[tuple[int, int], ...]

    def to_dict(self) -> dict[str, Any]:
        """The plan as plain JSON: the same keys, with lists for tuples."""
        return {
            "size": self.size,
            "encoding": self.encoding,
            "delimiter": self.delimiter,
            "header": list(self.header),
            "header_lines": self.header_lines,
            "ranges": [[start, end] for start, end in self.ranges],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CsvPlan:
        """Rebuild a plan from ``to_dict()``'s dict (e.g. after a JSON round trip).

        Raises:
            ValueError: the ranges are empty, not contiguous, or not within ``size``.
            KeyError, TypeError: ``data`` is not of that shape.
        """
        plan = cls(
            size=int(data["size"]),
            encoding=str(data["encoding"]),
            delimiter=str(data["delimiter"]),
            header=tuple(str(name) for name in data["header"]),
            header_lines=int(data["header_lines"]),
            ranges=tuple((int(start), int(end)) for start, end in data["ranges"]),
        )
        if not plan.ranges or plan.ranges[-1][1] != plan.size:
            raise ValueError("the ranges must end at the file's size")
        for (_, end), (start, _) in zip(plan.ranges, plan.ranges[1:], strict=False):
            if start != end:
                raise ValueError("the ranges must be contiguous")
        if any(start > end for start, end in plan.ranges):
            raise ValueError("a range ends before it starts")
        return plan


def plan_csv_parts(
    fileobj: BinaryIO,
    *,
    size: int,
    parts: int,
    encoding: str = "utf-8",
    delimiter: str | None = None,
) -> CsvPlan:
    """Read the head and header as ``profile_csv`` does, then cut the data into up to ``parts`` ranges.

    Args:
        fileobj: seekable binary stream positioned at the start of the file;
            it is read to ``size`` once (quotes and newlines are counted with
            ``bytes.count``/``bytes.find`` on ``SCAN_CHUNK_BYTES`` chunks) and
            left at an unspecified position, not closed.
        size: the file's size in bytes.
        parts: how many ranges are wanted, at least 1. Range ``k`` is the data
            from the first record boundary after byte ``k/parts`` of the data,
            so a small file gets fewer (at most one per data line).
        encoding, delimiter: as for ``profile_csv``.

    Returns:
        The plan; see ``CsvPlan``.

    Raises:
        NotCSVError: exactly when ``profile_csv`` raises it before the first
            data row (binary head, no header row, header not decodable or
            parsable); the "more rows bad than good" case is raised by
            ``merge_csv_parts``.
        ValueError: ``parts < 1``; ``size`` ends before the header does;
            ``encoding`` is not ASCII-compatible.
        LookupError: ``encoding`` is unknown.
    """
    if parts < 1:
        raise ValueError(f"parts must be at least 1, not {parts}")
    head = read_csv_head(fileobj, encoding=encoding, delimiter=delimiter)
    scanner = RowScanner(physical_lines(fileobj, head.head), head)
    header = scanner.read_header()
    data_start = head.bom_bytes + scanner.bytes
    if size < data_start:
        raise ValueError(f"size {size} ends before the header, which ends at byte {data_start}")

    length = size - data_start
    targets = [data_start + length * k // parts for k in range(1, parts)]
    fileobj.seek(data_start)
    cuts = [cut for cut in _record_boundaries(fileobj, start=data_start, end=size, targets=targets) if cut < size]
    starts = [data_start, *cuts]
    ends = [*cuts, size]
    return CsvPlan(
        size=size,
        encoding=encoding,
        delimiter=head.delimiter,
        header=tuple(header),
        header_lines=scanner.lines,
        ranges=tuple(zip(starts, ends, strict=True)),
    )


def _record_boundaries(fileobj: BinaryIO, *, start: int, end: int, targets: Sequence[int]) -> list[int]:
    """For each of the ascending ``targets``, the first record boundary after it (RFC 4180 parity).

    ``fileobj`` is positioned at ``start``, the start of the data, where
    quotes are balanced; it is read up to ``end``. A record boundary is the
    offset just after a b"\\n" preceded by an even number of quotes since
    ``start``. Targets that would give a boundary already found are dropped,
    so the result is strictly increasing and may be shorter than ``targets``.
    """
    boundaries: list[int] = []
    pending = iter(targets)
    target = next(pending, None)
    seeking = False  # a target was passed; looking for the next even-parity newline
    odd = False  # an odd number of quotes since ``start``
    base = start  # offset of ``chunk[0]``
    while (target is not None or seeking) and base < end:
        chunk = fileobj.read(min(SCAN_CHUNK_BYTES, end - base))
        if not chunk:
            break
        i = 0
        while True:
            if not seeking:
                if target is None or target >= base + len(chunk):
                    odd ^= bool(chunk.count(_QUOTE, i) & 1)
                    break
                t = target - base
                odd ^= bool(chunk.count(_QUOTE, i, t) & 1)
                i, seeking = t, True
            newline = chunk.find(_NEWLINE, i)
            if newline < 0:
                odd ^= bool(chunk.count(_QUOTE, i) & 1)
                break
            odd ^= bool(chunk.count(_QUOTE, i, newline) & 1)
            i = newline + 1
            if not odd:
                boundary = base + i
                boundaries.append(boundary)
                seeking = False
                while target is not None and target < boundary:
                    target = next(pending, None)
        base += len(chunk)
    return boundaries


class _Window:
    """Reads at most ``limit`` bytes of ``fileobj`` from where it stands."""

    def __init__(self, fileobj: BinaryIO, limit: int) -> None:
        self._fileobj = fileobj
        self._left = limit

    def read(self, n: int = -1, /) -> bytes:
        if self._left <= 0:
            return b""
        data = self._fileobj.read(self._left if n < 0 else min(n, self._left))
        self._left -= len(data)
        return data


def profile_csv_part(
    fileobj: BinaryIO,
    plan: CsvPlan,
    index: int,
    *,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Profile range ``plan.ranges[index]`` of the file as ``profile_csv`` profiles those rows.

    Args:
        fileobj: seekable binary stream of the same file; it is seeked to the
            range's start and read to its end (the last range is read on to the
            end of the stream, as ``profile_csv`` would); not closed.
        plan: from ``plan_csv_parts`` (or ``CsvPlan.from_dict``).
        index: which range, ``0 <= index < len(plan.ranges)``.
        on_progress: called as ``on_progress(bytes_read, range_bytes)`` with
            ``range_bytes = end - start``, under the same rules as
            ``profile_csv``'s: each ``PROGRESS_EVERY_BYTES``, clamped, then
            ``(range_bytes, range_bytes)`` at the end.

    Returns:
        A JSON-serialisable partial profile for ``merge_csv_parts``::

            {"index": int, "start": int, "end": int,   # the range, as planned
             "lines": int,             # physical lines read in the range
             "rows": int, "bad_rows": int,
             "bad_row_samples": [{"line": int, "reason": str}, ...],  # first
                                       # MAX_BAD_ROW_SAMPLES; lines count from 1
                                       # at the range's start
             "open_at_end": bool,      # the range ended inside a row
             "columns": [...]}         # ColumnStats.to_partial(), header order

    Raises:
        IndexError: ``index`` is out of range.
    """
    if not 0 <= index < len(plan.ranges):
        raise IndexError(f"part {index} of a plan with {len(plan.ranges)} ranges")
    start, end = plan.ranges[index]
    last = index == len(plan.ranges) - 1
    fileobj.seek(start)
    ticker = None if on_progress is None else ProgressTicker(on_progress, offset=0, total=end - start)
    scanner = RowScanner(
        physical_lines(fileobj if last else _Window(fileobj, end - start)),
        CsvHead.settled(encoding=plan.encoding, delimiter=plan.delimiter),
        tick=None if ticker is None else ticker.tick,
    )
    columns = [ColumnStats(name) for name in scanner.start_header(plan.header)]
    add_rows(columns, scanner.read_rows())
    if ticker is not None:
        ticker.finish()
    return {
        "index": index,
        "start": start,
        "end": end,
        "lines": scanner.lines,
        "rows": scanner.rows,
        "bad_rows": scanner.bad_rows,
        "bad_row_samples": scanner.bad_samples,
        "open_at_end": scanner.open_at_end,
        "columns": [stats.to_partial() for stats in columns],
    }


def merge_csv_parts(plan: CsvPlan, partials: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Merge the partial profiles of every range into ``profile_csv``'s result for the whole file.

    Args:
        plan: the plan the parts were profiled with.
        partials: ``profile_csv_part(..., plan, i)`` for every ``i``, in order
            (possibly after a JSON round trip).

    The result is equal (``==``, floats bit for bit) to ``profile_csv`` on the
    whole file with the plan's encoding and delimiter: counts add up, bad-row
    samples are renumbered past the lines of the header and earlier ranges and
    the first ``MAX_BAD_ROW_SAMPLES`` kept, value sets unite for the distinct
    counts, and means come from the exact sums (Shewchuk partials, then one
    correctly rounded ``math.fsum``) rather than from rounded part means.

    Raises:
        CsvPartsMismatchError: a range other than the last ended inside a row.
        NotCSVError: more rows are bad than good (as ``profile_csv``).
        ValueError: ``partials`` do not match the plan's ranges one for one.
    """
    if len(partials) != len(plan.ranges):
        raise ValueError(f"{len(partials)} partial profiles for {len(plan.ranges)} ranges")
    columns = [ColumnStats(name) for name in plan.header]
    rows = bad_rows = 0
    samples: list[dict[str, Any]] = []
    lines_before = plan.header_lines
    last = len(plan.ranges) - 1
    for index, (partial, (start, end)) in enumerate(zip(partials, plan.ranges, strict=True)):
        if (partial["index"], partial["start"], partial["end"]) != (index, start, end):
            raise ValueError(f"partial profile {index} is not of range {index} ({start}, {end})")
        if partial["open_at_end"] and index != last:
            raise CsvPartsMismatchError(
                f"range {index} ({start}, {end}) ends inside a row: the file's quoting is not RFC 4180"
            )
        rows += partial["rows"]
        bad_rows += partial["bad_rows"]
        for sample in partial["bad_row_samples"]:
            if len(samples) < MAX_BAD_ROW_SAMPLES:
                samples.append({"line": lines_before + sample["line"], "reason": sample["reason"]})
        lines_before += partial["lines"]
        for stats, column in zip(columns, partial["columns"], strict=True):
            stats.merge(ColumnStats.from_partial(stats.name, column))
    check_bad_rows(rows=rows, bad_rows=bad_rows, encoding=plan.encoding, delimiter=plan.delimiter)
    return profile_result(
        rows=rows,
        bad_rows=bad_rows,
        bad_samples=samples,
        columns=columns,
        delimiter=plan.delimiter,
        encoding=plan.encoding,
        size=plan.size,
    )
