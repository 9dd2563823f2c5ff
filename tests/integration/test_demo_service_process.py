"""The demo remote service as a real process: the exact Procfile command line, over real HTTP."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from proj.localredis import free_port
from tests import processes
from tests.processes import Process
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

#: The command as the Procfile runs it (through ``sh -c``, as honcho does).
COMMAND = "daphne -b ${BIND_ADDRESS:-127.0.0.1} -p ${DEMO_SERVICE_PORT:-8001} proj.demo_service:app"
READY_TIMEOUT_S = 30.0
JOB_TIMEOUT_S = 15.0
TOKEN = "integration-demo-service-token"


@dataclass
class Service:
    url: str
    process: Process


def healthy(url: str) -> bool:
    try:
        return bool(httpx.get(f"{url}/health", timeout=1).json() == {"ok": True})
    except httpx.TransportError:
        return False


@contextmanager
def demo_service(extra_env: dict[str, str] | None = None) -> Iterator[Service]:
    """Start the service on a free port, wait until ``/health`` answers, stop it afterwards."""
    port = free_port()
    env = {
        **os.environ,
        "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
        "PYTHONUNBUFFERED": "1",
        "BIND_ADDRESS": "127.0.0.1",
        "DEMO_SERVICE_PORT": str(port),
        **(extra_env or {}),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)  # the service must not need Django
    log = Path(tempfile.mkdtemp(prefix="demo-service-")) / "demo-service.log"
    service = Service(
        url=f"http://127.0.0.1:{port}", process=processes.start("demo service", COMMAND, env=env, log_path=log)
    )
    try:
        processes.wait_ready(
            {"/health": lambda: healthy(service.url)}, [service.process], READY_TIMEOUT_S, interval=0.1
        )
        yield service
    finally:
        processes.stop(service.process, timeout_s=10)


def final(client: httpx.Client, job_id: str) -> dict[str, Any] | None:
    """The job's body once it is no longer running, else None."""
    response = client.get(f"/jobs/{job_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body if body["state"] != "running" else None


def wait_final(client: httpx.Client, job_id: str) -> dict[str, Any]:
    return wait_for(lambda: final(client, job_id), JOB_TIMEOUT_S, desc=f"job {job_id} to end")


def answers(client: httpx.Client, job_id: str) -> bool:
    """The service answers about the job again (no longer 503)."""
    return client.get(f"/jobs/{job_id}").status_code != 503


def test_the_procfile_command_serves_the_contract():
    with demo_service() as service, httpx.Client(base_url=service.url, timeout=5) as client:
        started = client.post("/jobs", json={"duration_s": 0.5}, headers={"Idempotency-Key": "short-job"})
        assert started.status_code == 201, started.text
        job_id = started.json()["id"]
        repeat = client.post("/jobs", json={"duration_s": 0.5}, headers={"Idempotency-Key": "short-job"})
        assert (repeat.status_code, repeat.json()) == (200, {"id": job_id})

        done = wait_final(client, job_id)
        assert done == {
            "id": job_id,
            "state": "succeeded",
            "progress": {"current": 5, "total": 5, "message": "0.5 of 0.5 s"},
            "result": {"duration_s": 0.5, "ticks": 5},
            "error": None,
            "deletes": 0,
        }

        long_id = client.post("/jobs", json={"duration_s": 60}).json()["id"]
        assert client.get(f"/jobs/{long_id}").json()["state"] == "running"
        deleted = client.delete(f"/jobs/{long_id}")
        assert (deleted.status_code, deleted.json()) == (200, {"state": "cancelled"})
        seen = client.get(f"/jobs/{long_id}").json()
        assert seen["state"] == "cancelled"
        assert seen["deletes"] == 1
        assert client.delete(f"/jobs/{long_id}").status_code == 409

        flaky_id = client.post("/jobs", json={"duration_s": 0.2, "unavailable_s": 1}).json()["id"]
        down = client.get(f"/jobs/{flaky_id}")
        assert (down.status_code, down.json()) == (503, {"error": "temporarily unavailable"})
        assert down.headers["Retry-After"] == "1"
        wait_for(lambda: answers(client, flaky_id), JOB_TIMEOUT_S, desc="the service to answer again")
        assert wait_final(client, flaky_id)["state"] == "succeeded"

        bad = client.post("/jobs", content=b"{oops", headers={"Content-Type": "application/json"})
        assert bad.status_code == 400
        assert bad.json()["error"].startswith("body is not valid JSON")
        assert client.put(f"/jobs/{job_id}").json() == {"error": "method not allowed"}
        assert client.get("/jobs/unknown").status_code == 404

    assert not service.process.alive(), "the service should have stopped"


def test_the_token_from_the_environment_guards_every_endpoint_but_health():
    with demo_service({"DEMO_SERVICE_TOKEN": TOKEN}) as service, httpx.Client(base_url=service.url, timeout=5) as c:
        assert c.get("/health").status_code == 200
        refused = c.post("/jobs", json={"duration_s": 0.1})
        assert (refused.status_code, refused.headers["WWW-Authenticate"]) == (401, "Bearer")
        auth = {"Authorization": f"Bearer {TOKEN}"}
        job_id = c.post("/jobs", json={"duration_s": 0.1}, headers=auth).json()["id"]
        assert c.get(f"/jobs/{job_id}").status_code == 401
        assert c.get(f"/jobs/{job_id}", headers=auth).status_code == 200
