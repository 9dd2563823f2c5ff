"""CSV profiling: pure Python, standard library only (no Django, no pandas).

- ``reader``: a streaming CSV reader (bytes to decoded records: encoding, dialect and
  header detection, bad rows, ``NotCSVError``).
- ``columns``: ``ColumnStats``, the running figures of one column.
- ``profile``: ``profile_csv``, the reader feeding the column figures.
- ``parts``: one profile in record-aligned byte ranges, profiled apart and merged.

The subpackage is named ``csv`` yet does not shadow the standard library's: imports are
absolute, so ``import csv`` anywhere (here too) is the standard module, and this one is
only ever ``tasks_app.csv``.
"""

from __future__ import annotations

from tasks_app.csv.columns import NULL_TOKENS, ColumnStats
from tasks_app.csv.parts import CsvPartsMismatchError, CsvPlan, merge_csv_parts, plan_csv_parts, profile_csv_part
from tasks_app.csv.profile import profile_csv
from tasks_app.csv.reader import MAX_BAD_ROW_SAMPLES, PROGRESS_EVERY_BYTES, SAMPLE_BYTES, NotCSVError

__all__ = [
    "MAX_BAD_ROW_SAMPLES",
    "NULL_TOKENS",
    "PROGRESS_EVERY_BYTES",
    "SAMPLE_BYTES",
    "ColumnStats",
    "CsvPartsMismatchError",
    "CsvPlan",
    "NotCSVError",
    "merge_csv_parts",
    "plan_csv_parts",
    "profile_csv",
    "profile_csv_part",
]
