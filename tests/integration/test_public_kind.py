"""The README's example kind (``primes``, made with ``@job_kind``) on the real stack: its
work task runs in worker-jobs, reports through the recorder, and stops on cancel."""

from __future__ import annotations

import pytest

from tests.integration.stack import HttpSession
from tests.integration.wsclient import JobsClient

pytestmark = pytest.mark.integration


async def test_example_kind_runs_in_a_real_worker_with_live_progress(demo: HttpSession) -> None:
    client = await JobsClient.open(demo)
    accepted = await client.answer({"type": "job.start", "kind": "primes", "params": {"limit": 300_000}})
    assert accepted["type"] == "job.accepted", accepted
    frames = await client.until_final(accepted["job"]["id"], timeout=120)
    final = frames[-1]
    assert final["type"] == "job.succeeded", final
    assert final["job"]["result"] == {"limit": 300_000, "primes": 25_997}  # pi(300,000)
    assert final["job"]["progress"]["current"] == final["job"]["progress"]["total"] == 300_000
    await client.close()


async def test_cancel_stops_the_example_kind_mid_loop(demo: HttpSession) -> None:
    client = await JobsClient.open(demo)
    accepted = await client.answer({"type": "job.start", "kind": "primes", "params": {"limit": 20_000_000}})
    job_id = accepted["job"]["id"]
    while True:  # the work task has recorded progress: it is inside its loop
        frame = await client.recv(60)
        if frame.get("job", {}).get("id") == job_id and frame["job"]["progress"]["current"] > 0:
            break
    answer = await client.answer({"type": "job.cancel", "job_id": job_id})
    assert answer["job"]["state"] == "cancelling"
    frames = await client.until_final(job_id, timeout=60)
    assert frames[-1]["type"] == "job.cancelled"
    assert frames[-1]["job"]["progress"]["current"] < 20_000_000
    await client.close()
