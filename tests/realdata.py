"""Real public CSV files that ship inside PyPI data packages (nobody on the team wrote them)."""

from __future__ import annotations

import importlib.resources
from pathlib import Path


def real_csv(package: str, relpath: str) -> Path:
    """Path of ``relpath`` inside the installed ``package``; fails clearly when it is missing."""
    path = Path(str(importlib.resources.files(package).joinpath(*relpath.split("/"))))
    assert path.is_file(), f"{package} does not ship {relpath}"
    return path


AIRPORTS = real_csv("vega_datasets", "_data/airports.csv")
SEATTLE_WEATHER = real_csv("vega_datasets", "_data/seattle-weather.csv")
PENGUINS_RAW = real_csv("palmerpenguins", "data/penguins-raw.csv")
