"""Rate and ETA of a job's progress, from its recent progress samples.

A sample is ``[t, current]``: seconds since the job started, and units done. Services add
one with every saved progress change (:func:`add_sample`); the job object carries the
rate (:func:`progress_rate`, units per second) and the ETA (:func:`eta_seconds`).

The rate is the least-squares slope of ``current`` over ``t`` for the samples of the last
``RATE_WINDOW_S`` seconds (ordinary least squares: slope = sum((t - mean t)(c - mean c)) / sum((t - mean t)^2)). Over a
window it follows a change of pace within seconds, and unlike the first-to-last difference
it is not thrown by one early or late reading. The ETA is the units left divided by it.
"""

from __future__ import annotations

from typing import Final

#: Samples older than this (seconds before the newest) are dropped.
RATE_WINDOW_S: Final = 10.0
#: At most this many samples are kept per job (they are stored on the row).
MAX_SAMPLES: Final = 40
#: Below this time span between the oldest and newest sample, seconds, no rate is given.
MIN_SPAN_S: Final = 0.2


def add_sample(samples: list[list[float]], t: float, current: int) -> list[list[float]]:
    """``samples`` with ``[t, current]`` added (``t`` seconds since start, rising), trimmed
    to the window and to ``MAX_SAMPLES``; a new list."""
    kept = [s for s in samples if s[0] >= t - RATE_WINDOW_S and s[0] <= t]
    kept.append([round(t, 3), current])
    return kept[-MAX_SAMPLES:]


def progress_rate(samples: list[list[float]]) -> float | None:
    """Units per second over the samples (least-squares slope), or None with fewer than two
    samples or a span under ``MIN_SPAN_S``. Never negative."""
    if len(samples) < 2 or samples[-1][0] - samples[0][0] < MIN_SPAN_S:
        return None
    n = len(samples)
    mean_t = sum(s[0] for s in samples) / n
    mean_c = sum(s[1] for s in samples) / n
    var_t = sum((s[0] - mean_t) ** 2 for s in samples)
    if var_t <= 0:
        return None
    slope = sum((s[0] - mean_t) * (s[1] - mean_c) for s in samples) / var_t
    return round(max(0.0, slope), 3)


def eta_seconds(current: int, total: int | None, rate: float | None) -> float | None:
    """Seconds until ``current`` reaches ``total`` at ``rate`` units per second; None when the
    total or the rate is unknown or the rate is zero; 0 when done."""
    if total is None or rate is None:
        return None
    left = total - current
    if left <= 0:
        return 0.0
    if rate <= 0:
        return None
    return round(left / rate, 1)
