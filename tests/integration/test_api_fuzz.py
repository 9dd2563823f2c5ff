"""The HTTP API fuzzed by schemathesis from its own OpenAPI document, against the real stack.

``st run --checks all`` with every phase (coverage, fuzzing, stateful): every answer must be
documented (status, schema, content type, headers), no 5xx, schema-invalid requests refused,
schema-valid ones accepted (a body ``/api/openapi.json`` allows is one the kinds accept), auth
enforced. Bounded: ``FUZZ_MAX_EXAMPLES`` examples per operation (50), a fixed seed
(``FUZZ_SEED``) so a run repeats. The user is one of its own; its jobs are cancelled after.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.stack import ROOT, HttpSession, Stack
from tests.realdata import AIRPORTS
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

FUZZ_USER = ("fuzz", "integration-fuzz-password")
CONFIG = ROOT / "tests" / "integration" / "schemathesis" / "schemathesis.toml"
HOOKS = "tests.integration.schemathesis.hooks"
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "50"))
SEED = os.environ.get("FUZZ_SEED", "20261201")
RUN_TIMEOUT_S = 600
ACTIVE = ("pending", "running", "cancelling")


@pytest.fixture
def fuzz_user(stack: Stack) -> Iterator[HttpSession]:
    stack.manage("ensure_demo_user", extra_env={"DEMO_USERNAME": FUZZ_USER[0], "DEMO_PASSWORD": FUZZ_USER[1]})
    session = HttpSession(stack).login(*FUZZ_USER)
    yield session
    # The fuzzer started real jobs (up to the active limit): end them, so later tests find idle workers.
    status, page = session.json("GET", "/api/jobs/?limit=100")
    assert status == 200, page
    for job in page["items"]:
        if job["state"] in ACTIVE:
            session.json("POST", f"/api/jobs/{job['id']}/cancel/")

    def none_active() -> bool:
        _, now = session.json("GET", "/api/jobs/?limit=100")
        return not any(job["state"] in ACTIVE for job in now["items"])

    wait_for(none_active, timeout=30, desc="the fuzz user's jobs to end after cancel")


def test_schemathesis_finds_no_failure_in_the_http_api(stack: Stack, fuzz_user: HttpSession) -> None:
    status, upload = fuzz_user.upload(AIRPORTS.name, AIRPORTS.read_bytes())
    assert status == 201, upload
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SCHEMATHESIS_HOOKS": HOOKS,
        "FUZZ_SESSION": fuzz_user.cookie("sessionid"),
        "FUZZ_CSRF_TOKEN": fuzz_user.cookie("csrftoken"),
        "FUZZ_UPLOAD_ID": upload["upload_id"],
    }
    command = [
        str(Path(sys.executable).parent / "st"),
        "--config-file",
        str(CONFIG),
        "run",
        f"{stack.http_url}/api/openapi.json",
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        SEED,
        "--generation-database",
        "none",
        "--no-color",
    ]
    with tempfile.TemporaryDirectory(prefix="jobs-fuzz-") as workdir:  # schemathesis' files stay out of the repo
        result = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    report = result.stdout + result.stderr
    assert result.returncode == 0, f"schemathesis found failures:\n{report}"
    assert "No issues found" in report, report
    assert "Stateful" in report, report
    assert "7 selected / 7 total" in report, report
    # Schema-valid bodies of every kind the stack serves were accepted and started jobs.
    status, document = fuzz_user.json("GET", "/api/openapi.json")
    assert status == 200
    kinds = set(document["components"]["schemas"]["JobStartRequest"]["discriminator"]["mapping"])
    assert {"simulated", "csv_profile", "csv_profile_parallel", "remote", "primes", "primes_split"} <= kinds
    status, page = fuzz_user.json("GET", "/api/jobs/?limit=100")
    assert status == 200, page
    assert {job["kind"] for job in page["items"]} == kinds, page["items"]
