"""``make bench`` in its quick form (``BENCH_QUICK=1``): it runs to the end and prints every
table. It checks that the benchmark works, never its figures (README "Benchmarks")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH_TIMEOUT_S = 600


@pytest.mark.integration
def test_the_benchmark_runs_and_prints_every_figure():
    env = {**os.environ, "BENCH_QUICK": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "tests.bench"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=BENCH_TIMEOUT_S,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr[-3000:]
    for line in (
        "tick of 1 due jobs",
        "tick of 10 due jobs",
        "journal_mode=wal:",
        "journal_mode=delete:",
        "send_job_event:",
        "redis-py PUBLISH, same payload:",
        "one simulated job",
        "2 simulated jobs at once",
        "csv_profile airports.csv",
        "resident memory after the run",
        "capacity: N simulated jobs at once",
        "fan-out: one job",
        "idle sockets: 20 opened",
        "  plain      10 |",
        "peer: 2 jobs of 10 steps of 200 ms, 4 viewers",
        "  project, WebSockets       |",
        "  celery-progress, gunicorn |",
        "  celery-progress, daphne   |",
        "over celery-progress's best",
    ):
        assert line in out, f"{line!r} missing from:\n{out}"
    [row] = [line for line in out.splitlines() if line.strip().startswith("3 |")]
    assert row.split("|")[4].strip() == "0", f"a quick capacity job did not finish: {row}"
    for side in ("project, WebSockets", "celery-progress, gunicorn", "celery-progress, daphne"):
        [row] = [line for line in out.splitlines() if line.startswith(f"  {side} ")]
        assert row.split("|")[4].strip() == "0", f"a viewer of the peer benchmark saw no end: {row}"
