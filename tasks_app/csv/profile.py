"""Streaming profile of an uploaded CSV file: the reader's rows fed to the column figures.

Pure Python, standard library only (no Django, no pandas), so it can run
inside a Celery worker on any stream and be tested on its own.

``profile_csv`` reads a binary stream once, line by line (``tasks_app.csv.reader``),
and returns a JSON-serialisable summary: row counts, unreadable ("bad") rows, and
per-column figures (``tasks_app.csv.columns``: inferred type, null count, distinct
count, numeric min/max/mean). Memory is bounded by the number of distinct values per
column: rows are never collected into a list.

The figures are meant to agree with what a pandas user sees after
``pandas.read_csv(path)`` with default options (null tokens, ``nunique``,
``min``/``max``/``mean``), for well-formed files.

``add_rows`` and ``profile_result`` are public so that ``tasks_app.csv.parts``
profiles byte ranges of one file with the very same code and merges them into the
very same result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, BinaryIO

from tasks_app.csv.columns import ColumnStats
from tasks_app.csv.reader import ProgressTicker, RowScanner, check_bad_rows, physical_lines, read_csv_head

__all__ = ["add_rows", "profile_csv", "profile_result"]


def add_rows(columns: Sequence[ColumnStats], rows: Iterable[list[str]]) -> None:
    """Add each row's fields to the column figures, field ``i`` to ``columns[i]``.

    Raises:
        ValueError: a row is not exactly as wide as ``columns`` (``RowScanner.read_rows`` never gives one).
    """
    for row in rows:
        for stats, value in zip(columns, row, strict=True):
            stats.add(value)


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
    columns = [ColumnStats(name) for name in scanner.read_header()]
    add_rows(columns, scanner.read_rows())
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
