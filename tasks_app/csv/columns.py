"""Running figures for one CSV column: type inference, nulls, distinct values, numeric aggregates.

Pure Python, standard library only. ``ColumnStats`` is fed the fields of one
column one by one (``add``), can be merged with the figures of a later stretch
of the same column (``merge``), and travels between processes as a
JSON-serialisable dict (``to_partial`` / ``from_partial``). ``summary`` gives
the column's entry in ``tasks_app.csv.profile.profile_csv``'s result.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

__all__ = ["NULL_TOKENS", "ColumnStats"]

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

# ASCII digits only: Python's \d also matches other Unicode digits, which
# pandas does not read as numbers. fullmatch() is used, so no anchors needed.
_INT_RE = re.compile(r"[+-]?[0-9]+")
_FLOAT_RE = re.compile(r"[+-]?([0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)([eE][+-]?[0-9]+)?")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# A date, a "T" or space separator, then at least hours and minutes; the rest
# (seconds, fractions, offset) is left to datetime.fromisoformat to validate.
_DATETIME_PREFIX_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}")
_BOOL_WORDS = frozenset({"true", "false"})

# Candidate types in the order column_type() tries them (narrowest first),
# with the attribute that says whether every value so far fits.
_CANDIDATES: tuple[tuple[str, str], ...] = (
    ("integer", "can_int"),
    ("float", "can_float"),
    ("boolean", "can_bool"),
    ("date", "can_date"),
    ("datetime", "can_datetime"),
)


class ColumnStats:
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

    def merge(self, later: ColumnStats) -> None:
        """Fold in the figures of ``later``, the same column over the rows that follow.

        Afterwards ``self`` holds what ``add`` would have given over both
        stretches in order: counts add up, value sets unite, a type candidate
        survives only if it survived in both, the exact sums add exactly, and
        min/max keep the earlier value on ties (as ``add``'s strict ``<``/``>``
        do, which matters for ``-0.0`` against ``0.0``).
        """
        self.non_null += later.non_null
        self.nulls += later.nulls
        self.distinct_raw |= later.distinct_raw
        for _, attr in _CANDIDATES:
            setattr(self, attr, getattr(self, attr) and getattr(later, attr))
        self.int_sum += later.int_sum
        if later.int_min is not None and (self.int_min is None or later.int_min < self.int_min):
            self.int_min = later.int_min
        if later.int_max is not None and (self.int_max is None or later.int_max > self.int_max):
            self.int_max = later.int_max
        if self.can_float:
            for x in later.float_partials:
                _add_partial(self.float_partials, x)
        else:
            self.float_partials = []
        self.float_special += later.float_special
        if later.float_min is not None and (self.float_min is None or later.float_min < self.float_min):
            self.float_min = later.float_min
        if later.float_max is not None and (self.float_max is None or later.float_max > self.float_max):
            self.float_max = later.float_max

    def column_type(self) -> str:
        """The narrowest type all non-null values fit (integer ⊂ float)."""
        if self.non_null == 0:
            return "empty"
        for kind, attr in _CANDIDATES:
            if getattr(self, attr):
                return kind
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

    def to_partial(self) -> dict[str, Any]:
        """The running figures as plain JSON (``json.dumps`` gives standard JSON, no NaN).

        Shape (the name is left out: it travels in the plan)::

            {"non_null": int, "nulls": int,
             "values": [str, ...],          # distinct raw non-null values, sorted
             "fits": [str, ...],            # type candidates still alive, e.g. ["integer", "float"]
             # only while "integer" fits; decimal strings, exact at any size:
             "int_sum": str, "int_min": str | None, "int_max": str | None,
             # only while "float" fits; a float is a JSON number when finite,
             # else "inf" / "-inf" / "nan":
             "float_partials": [float, ...],   # Shewchuk partials, all finite
             "float_special": float | str,     # sum of the infinite values
             "float_min": float | str | None, "float_max": float | str | None}
        """
        partial: dict[str, Any] = {
            "non_null": self.non_null,
            "nulls": self.nulls,
            "values": sorted(self.distinct_raw),
            "fits": [kind for kind, attr in _CANDIDATES if getattr(self, attr)],
        }
        if self.can_int:
            partial["int_sum"] = str(self.int_sum)
            partial["int_min"] = None if self.int_min is None else str(self.int_min)
            partial["int_max"] = None if self.int_max is None else str(self.int_max)
        if self.can_float:
            partial["float_partials"] = [_float_out(x) for x in self.float_partials]
            partial["float_special"] = _float_out(self.float_special)
            partial["float_min"] = None if self.float_min is None else _float_out(self.float_min)
            partial["float_max"] = None if self.float_max is None else _float_out(self.float_max)
        return partial

    @classmethod
    def from_partial(cls, name: str, partial: dict[str, Any]) -> ColumnStats:
        """Rebuild the running figures of column ``name`` from ``to_partial``'s dict.

        Raises:
            KeyError, ValueError, TypeError: ``partial`` is not of that shape.
        """
        stats = cls(name)
        stats.non_null = int(partial["non_null"])
        stats.nulls = int(partial["nulls"])
        stats.distinct_raw = {str(v) for v in partial["values"]}
        fits = set(partial["fits"])
        unknown = fits - {kind for kind, _ in _CANDIDATES}
        if unknown:
            raise ValueError(f"unknown column types {sorted(unknown)}")
        for kind, attr in _CANDIDATES:
            setattr(stats, attr, kind in fits)
        if stats.can_int:
            stats.int_sum = int(partial["int_sum"])
            stats.int_min = None if partial["int_min"] is None else int(partial["int_min"])
            stats.int_max = None if partial["int_max"] is None else int(partial["int_max"])
        if stats.can_float:
            stats.float_partials = [_float_in(x) for x in partial["float_partials"]]
            stats.float_special = _float_in(partial["float_special"])
            stats.float_min = None if partial["float_min"] is None else _float_in(partial["float_min"])
            stats.float_max = None if partial["float_max"] is None else _float_in(partial["float_max"])
        return stats


def _float_out(x: float) -> float | str:
    # JSON has no inf or NaN; repr() of those ("inf", "-inf", "nan") is what float() reads back.
    # Finite floats stay numbers: json writes repr(x), which reads back bit for bit.
    return x if math.isfinite(x) else repr(x)


def _float_in(x: float | int | str) -> float:
    return float(x)


def _add_partial(partials: list[float], x: float) -> None:
    """Add finite ``x`` to a list of non-overlapping partial sums, exactly.

    Shewchuk's algorithm (J. R. Shewchuk, "Adaptive Precision Floating-Point
    Arithmetic and Fast Robust Geometric Predicates", 1997; the one behind
    ``math.fsum``), run incrementally so values need not be kept;
    ``math.fsum(partials)`` gives the correctly rounded total.
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
