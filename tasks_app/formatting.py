"""Sizes and counts for people, as the page and the cards show them (pure Python)."""

from __future__ import annotations

from typing import Final

#: Decimal (SI) byte units of :func:`human_bytes`, as the page's script shows sizes.
BYTE_UNITS: Final = ("KB", "MB", "GB", "TB")
BYTES_PER_UNIT: Final = 1000


def human_bytes(size: int) -> str:
    """A size for people, as the page shows it: ``"512 bytes"``, ``"210 KB"``, ``"31.1 MB"``
    (decimal units; one decimal below 100 of a unit, none from 100 on)."""
    if size < BYTES_PER_UNIT:
        return f"{size:,} bytes"
    value = float(size)
    unit = -1
    while value >= BYTES_PER_UNIT and unit < len(BYTE_UNITS) - 1:
        value /= BYTES_PER_UNIT
        unit += 1
    return f"{value:.1f} {BYTE_UNITS[unit]}" if value < 100 else f"{value:,.0f} {BYTE_UNITS[unit]}"
