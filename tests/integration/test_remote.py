"""The ``remote`` kind end to end: the demo service runs as its own Procfile process and
the poll chain follows jobs on it over real HTTP (tests/integration/stack.py)."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest

from tests.integration.stack import DOWN_SERVICE, HttpSession, Stack
from tests.integration.wsclient import JobsClient

pytestmark = pytest.mark.integration


def remote(payload: dict[str, Any], service: str = "demo") -> dict[str, Any]:
    return {"type": "job.start", "kind": "remote", "params": {"service": service, "payload": payload}}


async def run_to_end(demo: HttpSession, frame: dict[str, Any], timeout: float = 60) -> list[dict[str, Any]]:
    client = await JobsClient.open(demo)
    accepted = await client.answer(frame)
    assert accepted["type"] == "job.accepted", accepted
    frames = await client.until_final(accepted["job"]["id"], timeout=timeout)
    await client.close()
    return frames


def remote_id_of(stack: Stack, job_id: str) -> str:
    code = f"from tasks_app.models import Job; print(Job.objects.get(pk='{job_id}').kind_state['remote_id'])"
    return stack.manage("shell", "-c", code).strip().splitlines()[-1]


def service_job(stack: Stack, remote_id: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{stack.demo_service_url}/jobs/{remote_id}", timeout=10) as resp:
        return dict(json.loads(resp.read()))


async def test_remote_job_succeeds_with_live_progress_from_the_service(demo: HttpSession) -> None:
    frames = await run_to_end(demo, remote({"duration_s": 1.5}))
    final = frames[-1]
    assert final["type"] == "job.succeeded"
    assert final["job"]["result"] == {"duration_s": 1.5, "ticks": 15}
    assert final["job"]["progress"]["current"] == final["job"]["progress"]["total"] == 15
    middle = [f["job"]["progress"]["current"] for f in frames[:-1] if f["job"]["progress"]["total"] == 15]
    assert middle, "progress of the running service job was pushed before the end"
    assert middle == sorted(middle)
    assert all(f["job"]["retrying"] is None for f in frames)


async def test_failure_reported_by_the_service_fails_the_job(demo: HttpSession) -> None:
    frames = await run_to_end(demo, remote({"duration_s": 0.5, "fail": True}))
    final = frames[-1]
    assert final["type"] == "job.failed"
    assert final["job"]["error"] == "service 'demo' reported: demo failure requested (fail=true)"


async def test_503_for_a_while_is_retried_shown_and_the_job_recovers(demo: HttpSession) -> None:
    frames = await run_to_end(demo, remote({"duration_s": 2.5, "unavailable_s": 1.5}))
    retrying = [f["job"]["retrying"] for f in frames if f["job"]["retrying"]]
    assert retrying, "viewers were told the service was being retried"
    assert retrying[0]["attempt"] == 2
    assert retrying[0]["max_attempts"] == 5
    assert retrying[0]["next_attempt_in_s"] == 0.5
    assert "HTTP 503" in retrying[0]["reason"]
    assert "retry 2 of 5 in 0.5 s" in next(f["job"]["progress"]["message"] for f in frames if f["job"]["retrying"])
    final = frames[-1]
    assert final["type"] == "job.succeeded", final
    assert final["job"]["retrying"] is None
    assert final["job"]["result"]["ticks"] == 25


async def test_service_down_for_good_fails_after_the_configured_attempts(demo: HttpSession) -> None:
    frames = await run_to_end(demo, remote({"duration_s": 1}, service="down"))
    attempts = [f["job"]["retrying"]["attempt"] for f in frames if f["job"]["retrying"]]
    assert attempts == list(range(2, DOWN_SERVICE["max_attempts"] + 1))
    final = frames[-1]
    assert final["type"] == "job.failed"
    assert final["job"]["error"].startswith("service 'down' could not be reached: 3 failed attempts in a row")
    assert "cannot connect (ConnectError)" in final["job"]["error"]


async def test_cancel_sends_delete_to_the_service(demo: HttpSession, stack: Stack) -> None:
    client = await JobsClient.open(demo)
    accepted = await client.answer(remote({"duration_s": 60}))
    job_id = accepted["job"]["id"]
    while True:  # wait until the service reports progress: the remote job exists
        frame = await client.recv(30)
        if frame.get("job", {}).get("id") == job_id and frame["job"]["progress"]["total"] == 600:
            break
    remote_id = remote_id_of(stack, job_id)
    assert service_job(stack, remote_id)["state"] == "running"
    answer = await client.answer({"type": "job.cancel", "job_id": job_id})
    assert answer["job"]["state"] == "cancelling"
    frames = await client.until_final(job_id, timeout=30)
    assert frames[-1]["type"] == "job.cancelled"
    seen_by_service = service_job(stack, remote_id)
    assert seen_by_service["state"] == "cancelled"
    assert seen_by_service["deletes"] == 1
    await client.close()


async def test_unknown_service_name_is_invalid_params_and_starts_nothing(demo: HttpSession) -> None:
    client = await JobsClient.open(demo)
    error = await client.answer(remote({}, service="https://evil.example/"))
    assert error["type"] == "error"
    assert error["code"] == "invalid_params"
    assert error["fields"]["service"][0].startswith("unknown service 'https://evil.example/'; configured services:")
    listed = await client.answer({"type": "job.list"})
    assert all(job["kind"] != "remote" or job["params"]["service"] != "https://evil.example/" for job in listed["jobs"])
    await client.close()
