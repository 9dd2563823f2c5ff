"""``/metrics`` on the real stack (every Procfile process, one ``PROMETHEUS_MULTIPROC_DIR``):
a job run over a real socket moves the series that the web, worker-progress and the database
each contribute, and the access rule holds through Daphne."""

from __future__ import annotations

import asyncio
import base64
import urllib.error
import urllib.request

import pytest

from tests.integration.stack import DEMO_PASSWORD, HttpSession, Stack
from tests.integration.wsclient import JobsClient
from tests.scrape import Samples, parse, total, value
from tests.waiting import wait_for_async

pytestmark = pytest.mark.integration

#: Upper bound of every wait for the stack (never asserted on).
WAIT_S = 30.0
#: The job: five steps 100 ms apart.
PARAMS = {"step": 20, "interval_ms": 100}


def fetch(stack: Stack, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    """``(status, headers, body)`` of ``GET /metrics`` from this host."""
    request = urllib.request.Request(f"{stack.http_url}/metrics", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status), dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), dict(exc.headers), exc.read().decode()


async def scrape(stack: Stack) -> Samples:
    status, _, body = await asyncio.to_thread(fetch, stack)
    assert status == 200, body
    return parse(body)


def series(samples: Samples) -> dict[str, float]:
    """The figures this test follows, from one scrape (0 for a series not there)."""
    return {
        "succeeded": value(samples, "jobs_in_state", state="succeeded", kind="simulated") or 0,
        "polls": value(samples, "jobs_poll_lag_seconds_count") or 0,
        "frames": value(samples, "jobs_ws_frames_sent_total", endpoint="jobs") or 0,
        "sockets": value(samples, "jobs_ws_open_sockets", endpoint="jobs") or 0,
    }


async def test_a_job_moves_the_series_of_the_web_the_progress_worker_and_the_database(
    demo: HttpSession, stack: Stack
) -> None:
    before = series(await scrape(stack))
    client = await JobsClient.open(demo)
    try:
        await run_one_job_and_check(stack, client, before)
    finally:
        await client.close()

    async def socket_gone() -> bool:
        return series(await scrape(stack))["sockets"] == before["sockets"]

    await wait_for_async(socket_gone, WAIT_S, 0.1, "the closed socket no longer counted")


async def run_one_job_and_check(stack: Stack, client: JobsClient, before: dict[str, float]) -> None:
    """Run a simulated job on the open socket ``client``; check each series moved from ``before``."""

    async def socket_counted() -> dict[str, float]:
        now = series(await scrape(stack))
        return now if now["sockets"] >= before["sockets"] + 1 else {}  # {}: not yet

    assert (await wait_for_async(socket_counted, WAIT_S, 0.1, "the open socket counted"))["sockets"] >= 1
    accepted = await client.answer({"type": "job.start", "kind": "simulated", "params": PARAMS})
    assert accepted["type"] == "job.accepted", accepted
    frames = await client.until_final(accepted["job"]["id"], timeout=WAIT_S)
    assert frames[-1]["type"] == "job.succeeded"
    sent = len(client.received)  # the answer and every live frame, each counted by the web process
    # Each frame that shows progress came from a poll of a tick (one frame a poll at most).
    by_polls = sum(1 for frame in frames if frame["job"]["progress"]["current"] > 0)
    assert by_polls >= 1, frames

    async def counted() -> dict[str, float]:
        now = series(await scrape(stack))
        return now if now["frames"] >= before["frames"] + sent else {}

    after = await wait_for_async(counted, WAIT_S, 0.1, "the frames sent counted")
    assert after["succeeded"] == before["succeeded"] + 1  # from the database, at scrape time
    assert after["polls"] - before["polls"] >= by_polls  # observed in worker-progress, added up by the web
    assert after["frames"] - before["frames"] >= sent
    assert after["sockets"] >= 1
    samples = await scrape(stack)
    assert value(samples, "jobs_poll_lag_seconds_bucket", le="+Inf") == value(samples, "jobs_poll_lag_seconds_count")
    # The lag of a poll on an idle stack stays well inside a second (PROGRESS_TICK_MS is 25 ms).
    assert (value(samples, "jobs_poll_lag_seconds_bucket", le="1.0") or 0) - before["polls"] >= by_polls
    assert value(samples, "jobs_supervisor_repairs_total", repair="rearmed") is not None  # worker-progress's
    assert total(samples, "jobs_events_publish_failed_total") == 0


def test_through_a_proxy_only_a_staff_login_may_scrape(stack: Stack) -> None:
    forwarded = {"X-Forwarded-For": "203.0.113.7"}
    status, headers, body = fetch(stack, forwarded)
    assert (status, headers["WWW-Authenticate"]) == (401, 'Basic realm="metrics", charset="UTF-8"'), body
    assert "jobs_" not in body
    login = base64.b64encode(f"demo:{DEMO_PASSWORD}".encode()).decode()
    status, headers, body = fetch(stack, {**forwarded, "Authorization": f"Basic {login}"})
    assert status == 200
    assert headers["Content-Type"] == "text/plain; version=1.0.0; charset=utf-8"
    assert value(parse(body), "jobs_in_state", state="pending", kind="primes") is not None
    wrong = base64.b64encode(b"demo:not-the-password").decode()
    assert fetch(stack, {**forwarded, "Authorization": f"Basic {wrong}"})[0] == 401
