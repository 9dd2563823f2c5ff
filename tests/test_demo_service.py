"""The demo remote service, in-process over HTTP with a fake clock.

The app is driven through httpx's own ASGI transport: ``starlette.testclient`` warns
(StarletteDeprecationWarning) when imported without the ``httpx2`` package, and warnings are
errors here.

(Over ~350 lines: one case per rule of the demo service's HTTP contract, on one fake clock.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from proj.demo_service import FAIL_ERROR, MAX_BODY_BYTES, TOKEN_ENV, create_app

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "s3cret-demo-token"


class FakeClock:
    """Seconds that move only when a test says so."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def client_for(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://demo")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def client(clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(create_app(clock=clock, token="")) as c:
        yield c


async def start(client: httpx.AsyncClient, **payload) -> str:
    response = await client.post("/jobs", json=payload)
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def test_health(client):
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"ok": True}


async def test_start_progress_and_success(client, clock):
    job_id = await start(client, duration_s=10)
    assert uuid.UUID(hex=job_id).hex == job_id

    first = (await client.get(f"/jobs/{job_id}")).json()
    assert first == {
        "id": job_id,
        "state": "running",
        "progress": {"current": 0, "total": 100, "message": "0.0 of 10.0 s"},
        "result": None,
        "error": None,
        "deletes": 0,
    }

    clock.advance(3.2)
    middle = (await client.get(f"/jobs/{job_id}")).json()
    assert middle["state"] == "running"
    assert middle["progress"] == {"current": 32, "total": 100, "message": "3.2 of 10.0 s"}

    clock.advance(6.79)
    assert (await client.get(f"/jobs/{job_id}")).json()["progress"]["current"] == 99

    clock.advance(0.01)
    done = await client.get(f"/jobs/{job_id}")
    assert done.status_code == 200
    assert done.json() == {
        "id": job_id,
        "state": "succeeded",
        "progress": {"current": 100, "total": 100, "message": "10.0 of 10.0 s"},
        "result": {"duration_s": 10.0, "ticks": 100},
        "error": None,
        "deletes": 0,
    }

    clock.advance(500)
    assert (await client.get(f"/jobs/{job_id}")).json() == done.json()


async def test_defaults_and_zero_duration(client, clock):
    default_id = await start(client)
    body = (await client.get(f"/jobs/{default_id}")).json()
    assert body["progress"]["total"] == 100  # 10 s by default
    assert body["state"] == "running"

    instant_id = await start(client, duration_s=0)
    instant = (await client.get(f"/jobs/{instant_id}")).json()
    assert instant["state"] == "succeeded"
    assert instant["progress"] == {"current": 1, "total": 1, "message": "0.0 of 0.0 s"}

    empty = await client.post("/jobs", content=b"")
    assert empty.status_code == 201
    assert (await client.get(f"/jobs/{empty.json()['id']}")).json()["progress"]["total"] == 100


async def test_fail_requested(client, clock):
    job_id = await start(client, duration_s=2, fail=True)
    clock.advance(1.5)
    running = (await client.get(f"/jobs/{job_id}")).json()
    assert running["state"] == "running"
    assert running["error"] is None

    clock.advance(0.5)
    failed = (await client.get(f"/jobs/{job_id}")).json()
    assert failed["state"] == "failed"
    assert failed["error"] == FAIL_ERROR == "demo failure requested (fail=true)"
    assert failed["result"] is None
    assert failed["progress"]["current"] == failed["progress"]["total"] == 20


async def test_unavailable_then_recovery(client, clock):
    job_id = await start(client, duration_s=5, unavailable_s=2.5)

    down = await client.get(f"/jobs/{job_id}")
    assert down.status_code == 503
    assert down.json() == {"error": "temporarily unavailable"}
    assert down.headers["Retry-After"] == "3"  # 2.5 s left, rounded up to whole seconds

    clock.advance(2.2)
    still_down = await client.get(f"/jobs/{job_id}")
    assert still_down.status_code == 503
    assert still_down.headers["Retry-After"] == "1"  # never 0 while unavailable

    clock.advance(0.3)
    up = await client.get(f"/jobs/{job_id}")
    assert up.status_code == 200
    assert up.json()["state"] == "running"
    assert up.json()["progress"]["current"] == 25  # the job ran all along


async def test_unknown_job_is_404(client):
    for method in ("GET", "DELETE"):
        response = await client.request(method, "/jobs/0123456789abcdef0123456789abcdef")
        assert response.status_code == 404
        assert response.json() == {"error": "no job with this id"}


async def test_delete_cancels_a_running_job_for_good(client, clock):
    job_id = await start(client, duration_s=10)
    clock.advance(3.2)

    deleted = await client.delete(f"/jobs/{job_id}")
    assert deleted.status_code == 200
    assert deleted.json() == {"state": "cancelled"}

    clock.advance(60)  # well past the duration: still cancelled, progress frozen at the DELETE
    body = (await client.get(f"/jobs/{job_id}")).json()
    assert body["state"] == "cancelled"
    assert body["progress"] == {"current": 32, "total": 100, "message": "3.2 of 10.0 s"}
    assert body["result"] is None
    assert body["deletes"] == 1

    again = await client.delete(f"/jobs/{job_id}")
    assert again.status_code == 409
    assert again.json() == {"error": "job already cancelled", "state": "cancelled"}
    assert (await client.get(f"/jobs/{job_id}")).json()["deletes"] == 2


@pytest.mark.parametrize(("fail", "state"), [(False, "succeeded"), (True, "failed")])
async def test_delete_of_a_final_job_is_409(client, clock, fail, state):
    job_id = await start(client, duration_s=1, fail=fail)
    clock.advance(1)

    response = await client.delete(f"/jobs/{job_id}")
    assert response.status_code == 409
    assert response.json() == {"error": f"job already {state}", "state": state}
    body = (await client.get(f"/jobs/{job_id}")).json()
    assert body["state"] == state
    assert body["deletes"] == 1


async def test_delete_works_while_status_is_unavailable(client, clock):
    job_id = await start(client, duration_s=10, unavailable_s=5)
    assert (await client.delete(f"/jobs/{job_id}")).status_code == 200
    clock.advance(5)
    assert (await client.get(f"/jobs/{job_id}")).json()["state"] == "cancelled"


@pytest.mark.parametrize(
    ("payload", "fields"),
    [
        ({"duration_s": "10"}, {"duration_s": ["must be a number (seconds)"]}),
        ({"duration_s": True}, {"duration_s": ["must be a number (seconds)"]}),
        ({"duration_s": None}, {"duration_s": ["must be a number (seconds)"]}),
        ({"duration_s": -0.1}, {"duration_s": ["must be between 0 and 3600 seconds"]}),
        ({"duration_s": 3600.5}, {"duration_s": ["must be between 0 and 3600 seconds"]}),
        ({"unavailable_s": 4000}, {"unavailable_s": ["must be between 0 and 3600 seconds"]}),
        ({"fail": "yes"}, {"fail": ["must be a boolean"]}),
        ({"fail": 1}, {"fail": ["must be a boolean"]}),
        (
            {"duration": 5, "fail": 0, "extra": {}},
            {"duration": ["unknown field"], "extra": ["unknown field"], "fail": ["must be a boolean"]},
        ),
    ],
)
async def test_invalid_payload_names_the_fields(client, payload, fields):
    response = await client.post("/jobs", json=payload)
    assert response.status_code == 400
    assert response.json() == {"error": "invalid payload", "fields": fields}


async def test_bounds_are_accepted(client, clock):
    job_id = await start(client, duration_s=3600, unavailable_s=0.0, fail=False)
    assert (await client.get(f"/jobs/{job_id}")).json()["progress"]["total"] == 36000


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"[1, 2]", "body must be a JSON object"),
        (b'"duration_s"', "body must be a JSON object"),
        (b"null", "body must be a JSON object"),
        (b"{not json", "body is not valid JSON"),
        (b'{"duration_s": NaN}', "body is not valid JSON: NaN is not valid JSON"),
        (b'{"duration_s": Infinity}', "body is not valid JSON: Infinity is not valid JSON"),
        (b"\xff\xfe\xfd", "body is not valid JSON"),
        (b"[" * 5000, "body is not valid JSON"),
    ],
)
async def test_body_that_is_not_a_json_object(client, body, error):
    response = await client.post("/jobs", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"].startswith(error)
    assert set(response.json()) == {"error"}


async def test_body_too_large(client):
    body = json.dumps({"duration_s": 1, "pad": "x" * MAX_BODY_BYTES}).encode()
    response = await client.post("/jobs", content=body)
    assert response.status_code == 413
    assert response.json() == {"error": f"body larger than {MAX_BODY_BYTES} bytes"}


async def test_idempotency_key_returns_the_same_job(client, clock):
    headers = {"Idempotency-Key": "job-42-start"}
    first = await client.post("/jobs", json={"duration_s": 5}, headers=headers)
    assert first.status_code == 201
    clock.advance(1)
    repeat = await client.post("/jobs", json={"duration_s": 5.0, "fail": False}, headers=headers)
    assert repeat.status_code == 200
    assert repeat.json() == first.json()
    # The repeat did not restart the job: it is still 1 s old.
    assert (await client.get(f"/jobs/{first.json()['id']}")).json()["progress"]["current"] == 10

    other = await client.post("/jobs", json={"duration_s": 5}, headers={"Idempotency-Key": "job-43-start"})
    assert other.status_code == 201
    assert other.json()["id"] != first.json()["id"]
    no_key = await client.post("/jobs", json={"duration_s": 5})
    assert no_key.status_code == 201
    assert no_key.json()["id"] not in {first.json()["id"], other.json()["id"]}


async def test_idempotency_key_with_another_payload_is_refused(client):
    headers = {"Idempotency-Key": "reused"}
    first = await client.post("/jobs", json={"duration_s": 5}, headers=headers)
    conflict = await client.post("/jobs", json={"duration_s": 6}, headers=headers)
    assert conflict.status_code == 422
    assert conflict.json() == {"error": "Idempotency-Key already used with another payload", "id": first.json()["id"]}


@pytest.mark.parametrize("key", ["", "k" * 256])
async def test_idempotency_key_length(client, key):
    response = await client.post("/jobs", json={}, headers={"Idempotency-Key": key})
    assert response.status_code == 400
    assert response.json() == {"error": "Idempotency-Key must be 1 to 255 characters"}


async def test_oldest_jobs_are_forgotten_past_the_cap(clock):
    async with client_for(create_app(clock=clock, token="", max_jobs=3)) as client:
        first = await client.post("/jobs", json={}, headers={"Idempotency-Key": "first"})
        later = [await start(client) for _ in range(3)]
        assert (await client.get(f"/jobs/{first.json()['id']}")).status_code == 404
        for job_id in later:
            assert (await client.get(f"/jobs/{job_id}")).status_code == 200
        # The forgotten job's key starts afresh.
        again = await client.post("/jobs", json={}, headers={"Idempotency-Key": "first"})
        assert again.status_code == 201
        assert again.json()["id"] != first.json()["id"]
        assert (await client.get(f"/jobs/{later[0]}")).status_code == 404


async def test_wrong_method_and_path_answer_json(client):
    job_id = await start(client)
    cases = [("PUT", f"/jobs/{job_id}", 405), ("GET", "/jobs", 405), ("POST", "/health", 405), ("GET", "/nope", 404)]
    for method, path, code in cases:
        response = await client.request(method, path)
        assert response.status_code == code, (method, path)
        assert response.headers["Content-Type"] == "application/json"
        assert response.json() == {"error": "method not allowed" if code == 405 else "not found"}
    put = await client.put(f"/jobs/{job_id}")
    assert set(put.headers["Allow"].split(", ")) == {"GET", "HEAD", "DELETE"}


async def test_unexpected_error_is_a_json_500():
    def broken_clock() -> float:
        raise RuntimeError("the clock fell off the wall")

    app = create_app(clock=broken_clock, token="")
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:
        response = await client.post("/jobs", json={})
    assert response.status_code == 500
    assert response.json() == {"error": "internal error"}
    assert "clock fell off" not in response.text


async def test_auth_when_a_token_is_given(clock):
    async with client_for(create_app(clock=clock, token=TOKEN)) as client:
        assert (await client.get("/health")).json() == {"ok": True}

        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            refused = await client.post("/jobs", json={}, headers=headers)
            assert refused.status_code == 401
            assert refused.json() == {"error": "missing or wrong bearer token"}
            assert refused.headers["WWW-Authenticate"] == "Bearer"

        auth = {"Authorization": f"Bearer {TOKEN}"}
        created = await client.post("/jobs", json={"duration_s": 1}, headers=auth)
        assert created.status_code == 201
        job_id = created.json()["id"]
        assert (await client.get(f"/jobs/{job_id}")).status_code == 401
        assert (await client.delete(f"/jobs/{job_id}")).status_code == 401
        assert (await client.get(f"/jobs/{job_id}", headers=auth)).json()["state"] == "running"
        assert (await client.delete(f"/jobs/{job_id}", headers=auth)).json() == {"state": "cancelled"}


async def test_token_is_read_from_the_environment(clock, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    async with client_for(create_app(clock=clock)) as client:
        assert (await client.post("/jobs", json={})).status_code == 401
        ok = await client.post("/jobs", json={}, headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 201

    monkeypatch.delenv(TOKEN_ENV)
    async with client_for(create_app(clock=clock)) as client:
        assert (await client.post("/jobs", json={})).status_code == 201

    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    async with client_for(create_app(clock=clock, token="")) as client:
        assert (await client.post("/jobs", json={})).status_code == 201  # an explicit "" turns auth off


def test_importing_the_service_loads_no_app_code_and_no_django_settings():
    # Importing proj.demo_service runs proj/__init__.py, which creates the Celery app (Celery's
    # Django fix-up then imports a few django modules); nothing configures Django or imports
    # the project's apps, settings or Celery configuration.
    code = (
        "import json, sys, proj.demo_service as s; "
        "from django.conf import settings; "
        "assert s.app is not None; "
        "print(json.dumps({'configured': settings.configured, 'ours': sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('proj', 'tasks_app', 'realtime', 'celeryconfig'))}))"
    )
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    loaded = json.loads(result.stdout)
    assert loaded["configured"] is False
    others = [m for m in loaded["ours"] if m not in ("proj", "proj.celery") and not m.startswith("proj.demo_service")]
    assert others == []
