"""Tests for tasks_app.csv.profile_csv (the reader and the column figures together).

The real-file tests use public CSV files shipped inside installed PyPI
packages (vega_datasets, palmerpenguins) and check every figure against an
independent computation with pandas.read_csv using its default options.

(Over ~350 lines: one case per rule of the profile (types, nulls, bad rows, encodings,
dialects), then the real public files.)
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tasks_app.csv import (
    MAX_BAD_ROW_SAMPLES,
    NULL_TOKENS,
    PROGRESS_EVERY_BYTES,
    NotCSVError,
    profile_csv,
)
from tests.realdata import real_csv

REAL_FILES = [
    ("vega_datasets", "_data/airports.csv"),
    ("vega_datasets", "_data/seattle-weather.csv"),
    ("palmerpenguins", "data/penguins-raw.csv"),
]
_real_path = real_csv  # shared with the integration tests (tests/realdata.py)


def _profile_path(path: Path, **kwargs: Any) -> dict[str, Any]:
    with path.open("rb") as fh:
        return profile_csv(fh, size=path.stat().st_size, **kwargs)


def _profile_bytes(data: bytes, **kwargs: Any) -> dict[str, Any]:
    return profile_csv(io.BytesIO(data), size=len(data), **kwargs)


def _columns(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {col["name"]: col for col in result["columns"]}


# --------------------------------------------------------------------------
# Real public files, checked against pandas
# --------------------------------------------------------------------------


def test_null_tokens_mirror_pandas_defaults() -> None:
    from pandas._libs.parsers import STR_NA_VALUES

    assert frozenset(STR_NA_VALUES) == NULL_TOKENS


@pytest.mark.parametrize(("package", "relpath"), REAL_FILES, ids=[f for _, f in REAL_FILES])
def test_real_file_matches_pandas(package: str, relpath: str) -> None:
    path = _real_path(package, relpath)
    result = _profile_path(path)
    df = pd.read_csv(path)

    json.dumps(result)  # must be JSON-serialisable
    assert result["rows"] == len(df)
    assert result["bad_rows"] == 0
    assert result["bad_row_samples"] == []
    assert result["delimiter"] == ","
    assert result["encoding"] == "utf-8"
    assert result["bytes"] == path.stat().st_size
    assert [c["name"] for c in result["columns"]] == list(df.columns)

    for col in result["columns"]:
        series = df[col["name"]]
        name = col["name"]
        assert col["non_null"] == series.count(), name
        assert col["nulls"] == series.isna().sum(), name
        assert col["non_null"] + col["nulls"] == result["rows"], name
        assert col["distinct"] == series.nunique(), name

        if pd.api.types.is_integer_dtype(series.dtype):
            assert col["type"] == "integer", name
        elif pd.api.types.is_float_dtype(series.dtype):
            non_null = series.dropna()
            if series.isna().any() and (non_null == non_null.round()).all():
                # pandas turns an integer column with NaN into float64.
                assert col["type"] in {"integer", "float"}, name
            else:
                assert col["type"] == "float", name
        elif pd.api.types.is_bool_dtype(series.dtype):
            assert col["type"] == "boolean", name
        else:
            assert pd.api.types.is_string_dtype(series.dtype), name
            assert col["type"] in {"string", "boolean", "date", "datetime"}, name

        if col["type"] in {"integer", "float"}:
            assert col["min"] == pytest.approx(series.min(), rel=1e-9), name
            assert col["max"] == pytest.approx(series.max(), rel=1e-9), name
            assert col["mean"] == pytest.approx(series.mean(), rel=1e-9), name
            expected_kind = int if col["type"] == "integer" else float
            assert type(col["min"]) is expected_kind, name
            assert type(col["max"]) is expected_kind, name
            assert isinstance(col["mean"], float), name
        else:
            assert (col["min"], col["max"], col["mean"]) == (None, None, None), name

        if col["type"] == "date":
            # Independent check: pandas can parse every value as YYYY-MM-DD.
            parsed = pd.to_datetime(series.dropna(), format="%Y-%m-%d", errors="coerce")
            assert parsed.notna().all(), name


def test_penguins_specific_figures() -> None:
    """Quoted fields with commas and NA values are read as pandas reads them."""
    path = _real_path("palmerpenguins", "data/penguins-raw.csv")
    cols = _columns(_profile_path(path))

    # "Adult, 1 Egg Stage" is quoted and contains the delimiter.
    assert cols["Stage"]["type"] == "string"
    assert cols["Stage"]["distinct"] == 1
    assert pd.read_csv(path)["Stage"].iloc[0] == "Adult, 1 Egg Stage"
    # The "NA" token marks nulls; numeric columns stay numeric around them.
    assert cols["Delta 15 N (o/oo)"]["type"] == "float"
    assert cols["Delta 15 N (o/oo)"]["nulls"] > 0
    assert cols["Body Mass (g)"]["type"] == "integer"
    assert cols["Body Mass (g)"]["nulls"] == 2
    assert cols["Sample Number"]["min"] == 1
    assert cols["Date Egg"]["type"] == "date"


def test_real_file_with_explicit_delimiter_gives_same_result() -> None:
    path = _real_path("vega_datasets", "_data/seattle-weather.csv")
    sniffed = _profile_path(path)
    explicit = _profile_path(path, delimiter=",")
    assert sniffed == explicit
    cols = _columns(sniffed)
    # "2012/01/01" is not ISO 8601, so the date column stays a string.
    assert cols["date"]["type"] == "string"
    assert cols["weather"]["distinct"] == 5


# --------------------------------------------------------------------------
# Files that are not CSV
# --------------------------------------------------------------------------


def test_binary_blob_is_rejected() -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10" + bytes(range(256)) * 4
    with pytest.raises(NotCSVError, match="NUL bytes"):
        _profile_bytes(png)


@pytest.mark.parametrize("data", [b"", b"\n\n\r\n", b"\xef\xbb\xbf"], ids=repr)
def test_empty_file_is_rejected(data: bytes) -> None:
    with pytest.raises(NotCSVError, match="empty file: no header row"):
        _profile_bytes(data)


def test_header_only_file_has_empty_columns() -> None:
    result = _profile_bytes(b"a,b\n")
    assert result["rows"] == 0
    assert [(c["name"], c["type"], c["distinct"]) for c in result["columns"]] == [
        ("a", "empty", 0),
        ("b", "empty", 0),
    ]


def test_undecodable_header_is_rejected() -> None:
    data = "nom,prénom\n1,2\n".encode("latin-1")
    with pytest.raises(NotCSVError, match="the header is not valid utf-8 text"):
        _profile_bytes(data)


def test_latin1_file_read_as_utf8_is_rejected() -> None:
    lines = ["name,city"]
    lines += [f"Zoé {i},Orléans" for i in range(20)]
    lines += [f"Bob {i},Paris" for i in range(5)]  # a few rows are plain ASCII
    data = ("\n".join(lines) + "\n").encode("latin-1")

    with pytest.raises(NotCSVError) as excinfo:
        _profile_bytes(data)
    message = str(excinfo.value)
    assert "20 of 25 rows could not be read as utf-8 CSV" in message
    assert "is this a CSV file?" in message

    # Read with the right encoding, the same bytes profile fine.
    result = _profile_bytes(data, encoding="latin-1")
    assert result["rows"] == 25
    assert result["bad_rows"] == 0
    assert _columns(result)["city"]["distinct"] == 2


def test_encoding_must_be_ascii_compatible() -> None:
    with pytest.raises(ValueError, match="not ASCII-compatible"):
        _profile_bytes("a,b\n1,2\n".encode("utf-16"), encoding="utf-16")


# --------------------------------------------------------------------------
# Bad rows among good ones
# --------------------------------------------------------------------------


def test_bad_rows_are_counted_and_sampled_not_fatal() -> None:
    lines = [b"id,name,score"]  # physical line 1
    lines += [f"{i},name{i},{i * 10}".encode() for i in range(1, 41)]  # lines 2-41
    lines.append(b"41,short")  # line 42: too few fields
    lines += [f"{i},name{i},{i * 10}".encode() for i in range(42, 52)]  # 43-52
    lines.append(b"52,caf\xe9,520")  # line 53: latin-1 e-acute, not UTF-8
    lines.append(b"53,too,many,fields")  # line 54
    lines.append(b"")  # line 55: blank, neither a row nor bad
    lines.append(b"54,name54,540")  # line 56
    data = b"\n".join(lines) + b"\n"

    result = _profile_bytes(data)

    assert result["rows"] == 51
    assert result["bad_rows"] == 3
    assert result["bad_row_samples"] == [
        {"line": 42, "reason": "expected 3 fields, got 2"},
        {"line": 53, "reason": "undecodable bytes for utf-8 at byte 7"},
        {"line": 54, "reason": "expected 3 fields, got 4"},
    ]
    cols = _columns(result)
    # Bad rows are left out of the column figures.
    good_ids = [*range(1, 41), *range(42, 52), 54]
    assert cols["id"]["type"] == "integer"
    assert cols["id"]["non_null"] == 51
    assert cols["id"]["max"] == 54
    assert cols["id"]["mean"] == pytest.approx(sum(good_ids) / 51, rel=1e-12)
    assert cols["score"]["min"] == 10
    assert cols["name"]["distinct"] == 51


def test_bad_row_samples_are_capped() -> None:
    lines = [b"a,b"]
    for i in range(100):
        lines.append(f"{i},{i}".encode())
        if i % 5 == 0:
            lines.append(b"only-one-field")
    data = b"\n".join(lines) + b"\n"

    result = _profile_bytes(data)

    assert result["rows"] == 100
    assert result["bad_rows"] == 20
    assert len(result["bad_row_samples"]) == MAX_BAD_ROW_SAMPLES
    # The first bad row is physical line 3 (header, "0,0", then the bad one),
    # and each later one comes 6 lines further on.
    assert [s["line"] for s in result["bad_row_samples"]] == [3 + 6 * k for k in range(MAX_BAD_ROW_SAMPLES)]


# --------------------------------------------------------------------------
# Dialect: delimiter sniffing, quoting, BOM
# --------------------------------------------------------------------------


def test_semicolon_delimiter_is_sniffed() -> None:
    text = "name;price;note\n" + "".join(f"item {i};{i}.5;red, sweet and {i}\n" for i in range(30))
    result = _profile_bytes(text.encode())

    assert result["delimiter"] == ";"
    assert result["rows"] == 30
    assert result["bad_rows"] == 0
    cols = _columns(result)
    assert list(cols) == ["name", "price", "note"]
    assert cols["price"]["type"] == "float"
    assert cols["price"]["mean"] == pytest.approx(sum(i + 0.5 for i in range(30)) / 30)
    assert cols["note"]["type"] == "string"
    assert cols["note"]["distinct"] == 30


def test_tab_delimiter_is_sniffed_and_explicit_delimiter_wins() -> None:
    data = b"a\tb\n1\tx,y\n2\tz,w\n3\tq,r\n"
    sniffed = _profile_bytes(data)
    assert sniffed["delimiter"] == "\t"
    assert [c["name"] for c in sniffed["columns"]] == ["a", "b"]
    assert _columns(sniffed)["b"]["distinct"] == 3
    assert _profile_bytes(data, delimiter="\t") == sniffed

    # An explicit delimiter is used as given, even when it is not the best one.
    forced = _profile_bytes(b"a\tb\n", delimiter=",")
    assert forced["delimiter"] == ","
    assert [c["name"] for c in forced["columns"]] == ["a\tb"]


def test_wrong_explicit_delimiter_makes_rows_bad() -> None:
    data = b"a\tb\n1\tx,y\n2\tz,w\n3\tq,r\n"
    with pytest.raises(NotCSVError, match=r"3 of 3 rows .* delimiter ','"):
        _profile_bytes(data, delimiter=",")


def test_quoted_newline_field_spans_lines() -> None:
    data = (
        b"id,text\n"  # line 1
        b'1,"hello\nworld"\n'  # lines 2-3
        b"2,plain\n"  # line 4
        b'3,"a ""quoted"" word, and a comma"\n'  # line 5
        b'4,"multi\r\nline\r\nwith CRLF"\n'  # lines 6-8
        b"5\n"  # line 9: bad, one field
    )
    result = _profile_bytes(data)

    assert result["rows"] == 4
    assert result["bad_rows"] == 1
    # Line numbers count physical lines, including those inside quoted fields.
    assert result["bad_row_samples"] == [{"line": 9, "reason": "expected 2 fields, got 1"}]
    cols = _columns(result)
    assert cols["text"]["distinct"] == 4
    assert cols["id"]["max"] == 4
    # Cross-check with pandas on the good part of the file.
    good = data[: data.rindex(b"5\n")]
    df = pd.read_csv(io.BytesIO(good))
    assert df["text"].iloc[0] == "hello\nworld"
    assert cols["text"]["distinct"] == df["text"].nunique()


def test_utf8_bom_is_stripped_and_crlf_handled() -> None:
    data = "\ufeffid,ville\r\n1,Zürich\r\n2,Orléans\r\n".encode()
    result = _profile_bytes(data)
    cols = _columns(result)
    assert list(cols) == ["id", "ville"]
    assert cols["id"]["type"] == "integer"
    assert cols["ville"]["distinct"] == 2
    assert result["rows"] == 2


# --------------------------------------------------------------------------
# Type inference and column figures
# --------------------------------------------------------------------------


def test_type_inference_nulls_and_distinct() -> None:
    header = "ints,floats,mixnum,bools,dates,stamps,strs,empty,datemix"
    rows = [
        "1,1.5,1,True,2024-01-31,2024-01-31T10:00:00,a,,2024-01-31",
        "-2,2,1.0,false,2024-02-29,2024-02-29 23:59,b,NA,2024-01-31T10:00",
        "+3,.5,2,TRUE,2023-12-01,2024-03-01T00:00:00+01:00,1,NULL,2024-02-01",
        "NA,1e3,NaN,False,,2024-03-01T00:00:00.5,2024-01-01,nan,",
        "3,-4.25E-1,2,true,N/A,n/a,True,#N/A,2024-02-02",
    ]
    data = ("\n".join([header, *rows]) + "\n").encode()

    cols = _columns(_profile_bytes(data))

    assert {name: c["type"] for name, c in cols.items()} == {
        "ints": "integer",
        "floats": "float",
        "mixnum": "float",
        "bools": "boolean",
        "dates": "date",
        "stamps": "datetime",
        "strs": "string",
        "empty": "empty",
        "datemix": "string",  # dates mixed with a datetime: no narrower type
    }
    assert (cols["ints"]["non_null"], cols["ints"]["nulls"]) == (4, 1)
    assert cols["ints"]["distinct"] == 3  # "+3" and "3" are one number
    assert (cols["ints"]["min"], cols["ints"]["max"]) == (-2, 3)
    assert cols["ints"]["mean"] == pytest.approx(5 / 4)
    assert cols["floats"]["min"] == pytest.approx(-0.425)
    assert cols["floats"]["max"] == pytest.approx(1000.0)
    assert cols["mixnum"]["distinct"] == 2  # "1" and "1.0" are one number
    assert cols["bools"]["distinct"] == 2
    assert (cols["dates"]["non_null"], cols["dates"]["nulls"]) == (3, 2)
    assert cols["stamps"]["nulls"] == 1
    assert cols["empty"] == {
        "name": "empty",
        "type": "empty",
        "non_null": 0,
        "nulls": 5,
        "distinct": 0,
        "min": None,
        "max": None,
        "mean": None,
    }
    # Cross-check counts with pandas on the same bytes.
    df = pd.read_csv(io.BytesIO(data))
    for name in ("ints", "floats", "mixnum", "strs", "empty", "dates"):
        assert cols[name]["non_null"] == df[name].count(), name
        assert cols[name]["distinct"] == df[name].nunique(), name
    assert cols["ints"]["mean"] == pytest.approx(df["ints"].mean(), rel=1e-9)


def test_invalid_calendar_date_is_a_string() -> None:
    cols = _columns(_profile_bytes(b"d\n2023-02-29\n2024-01-01\n"))
    assert cols["d"]["type"] == "string"


def test_float_mean_is_exactly_summed() -> None:
    # Naive left-to-right float summation gives 0.0 here; the exact sum is 1.
    data = b"x\n1e16\n1\n-1e16\n"
    col = _columns(_profile_bytes(data))["x"]
    assert col["type"] == "float"
    assert col["mean"] == math.fsum([1e16, 1.0, -1e16]) / 3 == 1 / 3
    assert (col["min"], col["max"]) == (-1e16, 1e16)


def test_huge_integers_stay_exact() -> None:
    big = 2**70
    data = f"n\n{big}\n{big + 1}\n".encode()
    col = _columns(_profile_bytes(data))["n"]
    assert col["type"] == "integer"
    assert (col["min"], col["max"]) == (big, big + 1)
    assert col["distinct"] == 2


# --------------------------------------------------------------------------
# Progress reporting and streaming
# --------------------------------------------------------------------------


def _big_csv(n_rows: int = 20_000) -> bytes:
    lines = ["id,label,value"]
    lines += [f"{i},label number {i},{i * 0.25}" for i in range(n_rows)]
    return ("\n".join(lines) + "\n").encode()


def test_on_progress_reports_increasing_bytes_ending_at_size() -> None:
    data = _big_csv()
    size = len(data)
    assert size > 4 * PROGRESS_EVERY_BYTES
    calls: list[tuple[int, int]] = []

    result = _profile_bytes(data, on_progress=lambda done, total: calls.append((done, total)))

    assert result["rows"] == 20_000
    assert calls[-1] == (size, size)
    assert all(total == size for _, total in calls)
    done = [d for d, _ in calls]
    assert done == sorted(done)
    # Intermediate reports strictly increase.
    assert len(set(done[:-1])) == len(done) - 1
    # One report per PROGRESS_EVERY_BYTES read, plus the final one.
    assert len(calls) == size // PROGRESS_EVERY_BYTES + 1
    for k, d in enumerate(done[:-1], start=1):
        assert k * PROGRESS_EVERY_BYTES <= d < (k + 1) * PROGRESS_EVERY_BYTES


def test_on_progress_exception_propagates_and_stops_reading() -> None:
    class Cancelled(Exception):
        pass

    raised = Cancelled("job cancelled")
    data = _big_csv()
    stream = io.BytesIO(data)

    def cancel(done: int, total: int) -> None:
        raise raised

    with pytest.raises(Cancelled) as excinfo:
        profile_csv(stream, size=len(data), on_progress=cancel)

    assert excinfo.value is raised
    # It stopped early: the file was not read to the end.
    assert stream.tell() < len(data)


def test_reads_a_non_seekable_stream_in_chunks() -> None:
    class OneWayStream(io.RawIOBase):
        """Short reads of at most 1000 bytes, no seek, no line iteration."""

        def __init__(self, data: bytes) -> None:
            self._data = memoryview(data)
            self._pos = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            n = min(len(buffer), 1000, len(self._data) - self._pos)
            buffer[:n] = self._data[self._pos : self._pos + n]
            self._pos += n
            return n

        def __iter__(self) -> Any:
            raise AssertionError("profile_csv must not rely on line iteration")

    data = _big_csv(2000)
    from_chunks = profile_csv(OneWayStream(data), size=len(data))  # type: ignore[arg-type]
    assert from_chunks == _profile_bytes(data)
    assert from_chunks["rows"] == 2000
