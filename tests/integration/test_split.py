"""Split job kinds on the real stack (``primes_split``, the README's example made with
``split_job_kind``): the split, its items and the merge run in worker-jobs (prefork, 2
processes), one job and one bar reach the socket, a failed item is counted, cancel stops every
item, and the admin's task results of the job list every task."""

from __future__ import annotations

import time
import urllib.parse
from collections import Counter

import pytest

from tests.integration.stack import HttpSession, Stack
from tests.integration.test_admin_flower import flower_get
from tests.integration.wsclient import JobsClient
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

MERGE = "tasks_app.kind.primes_split.merge"
#: pi(3,000,000), a known figure.
PRIMES_BELOW_3M = 216_816


async def test_a_split_job_runs_its_items_in_the_workers_with_one_bar(stack: Stack, demo: HttpSession) -> None:
    client = await JobsClient.open(demo)
    params = {"limit": 3_000_000, "parts": 6}
    accepted = await client.answer({"type": "job.start", "kind": "primes_split", "params": params})
    assert accepted["type"] == "job.accepted", accepted
    frames = await client.until_final(accepted["job"]["id"], timeout=180)
    final = frames[-1]
    assert final["type"] == "job.succeeded", final
    assert final["job"]["result"] == {"limit": 3_000_000, "primes": PRIMES_BELOW_3M}
    assert final["job"]["progress"]["current"] == final["job"]["progress"]["total"] == 2_999_998
    messages = [f["job"]["progress"]["message"] for f in frames if f["type"] == "job.progress"]
    assert any(m.endswith("running") and "of 6 parts done" in m for m in messages), messages
    currents = [f["job"]["progress"]["current"] for f in frames]
    assert currents == sorted(currents), "the bar never goes back"
    assert any(0 < c < 2_999_998 for c in currents), "running items' progress counts before they end"
    assert any((f["job"]["progress"].get("rate") or 0) > 0 for f in frames), "rate is computed"
    await client.close()
    # Flower lists the split, each item and the merge, found by the job id in their arguments.
    job_id = accepted["job"]["id"]
    query = urllib.parse.urlencode({"search": job_id, "limit": 1000})

    def all_ended() -> dict[str, int]:
        tasks = flower_get(stack, f"/api/tasks?{query}").values()
        names = Counter(t["name"] for t in tasks if t["state"] == "SUCCESS" and job_id in str(t["args"]))
        wanted = {"tasks_app.kind.primes_split": 1, "tasks_app.kind.primes_split.item": 6, MERGE: 1}
        return dict(names) if all(names[n] >= k for n, k in wanted.items()) else {}

    names = wait_for(all_ended, timeout=20, desc="Flower to list the split job's tasks")
    assert names["tasks_app.kind.primes_split.item"] == 6
    assert names[MERGE] == 1, "the merge ran once"


async def test_a_failed_item_is_counted_and_sampled_when_the_policy_says_finish(demo: HttpSession) -> None:
    client = await JobsClient.open(demo)
    params = {"limit": 200_000, "parts": 4, "fail_part": 2}
    accepted = await client.answer({"type": "job.start", "kind": "primes_split", "params": params})
    frames = await client.until_final(accepted["job"]["id"], timeout=120)
    final = frames[-1]
    assert final["type"] == "job.succeeded", final
    failed = final["job"]["result"]["failed_items"]
    assert failed["count"] == 1
    assert failed["samples"][0]["index"] == 2
    assert failed["samples"][0]["error"] == "part 2 fails on purpose (fail_part)"
    assert final["job"]["progress"]["message"] == "3 of 4 parts done, 1 failed"
    await client.close()


async def test_a_failed_item_fails_the_job_at_once_when_the_policy_says_fail(demo: HttpSession) -> None:
    client = await JobsClient.open(demo)
    params = {"limit": 40_000_000, "parts": 4, "fail_part": 0, "keep_going": False}  # minutes of work
    accepted = await client.answer({"type": "job.start", "kind": "primes_split", "params": params})
    frames = await client.until_final(accepted["job"]["id"], timeout=60)
    final = frames[-1]
    assert final["type"] == "job.failed", final
    assert final["job"]["error"] == "part 1 of 4 failed: part 0 fails on purpose (fail_part)", final
    # The other parts were stopped, not run to their end: the workers take a new job at once.
    accepted = await client.answer({"type": "job.start", "kind": "primes_split", "params": {"limit": 20_000}})
    frames = await client.until_final(accepted["job"]["id"], timeout=30)
    assert frames[-1]["type"] == "job.succeeded", frames[-1]
    await client.close()


async def test_cancel_stops_every_item_within_two_seconds(demo: HttpSession) -> None:
    client = await JobsClient.open(demo)
    params = {"limit": 50_000_000, "parts": 8}  # minutes of work
    accepted = await client.answer({"type": "job.start", "kind": "primes_split", "params": params})
    job_id = accepted["job"]["id"]
    while True:  # two items run and have recorded progress
        frame = await client.recv(60)
        job = frame.get("job", {})
        if job.get("id") == job_id and job["progress"]["current"] > 0 and "2 running" in job["progress"]["message"]:
            break
    asked = time.monotonic()
    answer = await client.answer({"type": "job.cancel", "job_id": job_id})
    assert answer["job"]["state"] == "cancelling"
    frames = await client.until_final(job_id, timeout=30)
    assert frames[-1]["type"] == "job.cancelled", frames[-1]
    assert time.monotonic() - asked < 2.0
    # The workers are free again: a new split job runs to the end.
    accepted = await client.answer({"type": "job.start", "kind": "primes_split", "params": {"limit": 20_000}})
    frames = await client.until_final(accepted["job"]["id"], timeout=60)
    assert frames[-1]["type"] == "job.succeeded", frames[-1]
    await client.close()
