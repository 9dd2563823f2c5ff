"""End to end over real sockets: Daphne, two Celery workers, Redis, SQLite, Flower.

Every process is started from the Procfile (tests/integration/stack.py).
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import redis
from websockets.exceptions import InvalidStatus

from tests.integration.stack import DEMO_PASSWORD, ROOT, UPLOAD_MAX_BYTES, HttpSession, Stack
from tests.integration.wsclient import JobsClient
from tests.processes import http_status
from tests.realdata import AIRPORTS, PENGUINS_RAW
from tests.waiting import wait_for, wait_for_async

pytestmark = pytest.mark.integration


def assert_seq_rises(frames: list[dict[str, Any]]) -> None:
    seqs = [f["job"]["seq"] for f in frames]
    assert seqs == sorted(seqs), seqs
    assert len(set(seqs)) == len(seqs), seqs


async def test_simulated_job_runs_to_succeeded_at_100_with_rising_seq(demo: HttpSession, stack: Stack) -> None:
    conns = redis.Redis.from_url(stack.redis_url)
    connections_before = conns.info("stats")["total_connections_received"]
    client = await JobsClient.open(demo)
    started = time.monotonic()
    accepted = await client.answer(
        {"type": "job.start", "kind": "simulated", "params": {"step": 3, "interval_ms": 200}}
    )
    assert accepted["type"] == "job.accepted"
    job_id = accepted["job"]["id"]
    frames = await client.until_final(job_id, timeout=30)
    elapsed = time.monotonic() - started
    final = frames[-1]
    assert final["type"] == "job.succeeded"
    assert final["job"]["progress"]["current"] == 100
    assert final["job"]["progress"]["percent"] == 100.0
    assert final["job"]["result"]["steps"] == 34
    assert_seq_rises([accepted, *frames])
    percents = [f["job"]["progress"]["percent"] for f in frames if f["job"]["progress"]["percent"] is not None]
    assert percents == sorted(percents)
    assert len(frames) >= 20, "progress is pushed step by step, not only at the end"
    connections_opened = conns.info("stats")["total_connections_received"] - connections_before
    # One Redis pool per worker process, not one connection per group_send: ~35 frames
    # were sent through the channel layer while only a handful of connections opened.
    assert connections_opened < len(frames) // 2, (connections_opened, len(frames))
    print(
        f"\nsimulated job (step 3, 200 ms): {elapsed:.2f} s end to end, {len(frames)} frames, "
        f"{connections_opened} new Redis connections"
    )
    await client.close()


def profile_with_pandas(path: Path) -> dict[str, Any]:
    """The independent computation: what pandas says of the same file."""
    df = pd.read_csv(path)
    columns = {}
    for name in df.columns:
        series = df[name]
        numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
        columns[name] = {
            "non_null": int(series.count()),
            "nulls": int(series.isna().sum()),
            "distinct": int(series.nunique()),
            "min": float(series.min()) if numeric else None,
            "max": float(series.max()) if numeric else None,
            "mean": float(series.mean()) if numeric else None,
        }
    return {"rows": len(df), "columns": columns}


@pytest.mark.parametrize("path", [AIRPORTS, PENGUINS_RAW], ids=lambda p: p.name)
async def test_csv_profile_of_a_real_public_file_matches_pandas(demo: HttpSession, path: Path) -> None:
    content = path.read_bytes()
    status, upload = demo.upload(path.name, content)
    assert status == 201, upload
    assert (upload["name"], upload["size"]) == (path.name, len(content))
    client = await JobsClient.open(demo)
    started = time.monotonic()
    accepted = await client.answer(
        {"type": "job.start", "kind": "csv_profile", "params": {"upload_id": upload["upload_id"]}}
    )
    assert accepted["type"] == "job.accepted", accepted
    frames = await client.until_final(accepted["job"]["id"], timeout=60)
    elapsed = time.monotonic() - started
    final = frames[-1]
    assert final["type"] == "job.succeeded", final
    assert final["job"]["progress"]["current"] == final["job"]["progress"]["total"] == len(content)
    assert_seq_rises([accepted, *frames])
    result = final["job"]["result"]
    expected = profile_with_pandas(path)
    assert result["rows"] == expected["rows"]
    assert result["bad_rows"] == 0
    assert [c["name"] for c in result["columns"]] == list(expected["columns"])
    for column in result["columns"]:
        want = expected["columns"][column["name"]]
        for key in ("non_null", "nulls", "distinct"):
            assert column[key] == want[key], (column["name"], key)
        for key in ("min", "max", "mean"):
            if want[key] is None:
                assert column[key] is None, (column["name"], key)
            else:
                assert column[key] == pytest.approx(want[key], rel=1e-9), (column["name"], key)
    print(
        f"\ncsv_profile {path.name}: {len(content):,} bytes, {result['rows']:,} rows, "
        f"{len(result['columns'])} columns: {elapsed:.2f} s end to end"
    )
    await client.close()


async def test_cancel_mid_run_ends_cancelled_and_nothing_follows(demo: HttpSession) -> None:
    client = await JobsClient.open(demo)
    accepted = await client.answer(
        {"type": "job.start", "kind": "simulated", "params": {"step": 1, "interval_ms": 200}}
    )
    job_id = accepted["job"]["id"]
    while True:
        frame = await client.recv()
        if frame.get("job", {}).get("progress", {}).get("current", 0) >= 2:
            break
    answer = await client.answer({"type": "job.cancel", "job_id": job_id})
    assert answer["type"] == "job.snapshot"
    assert answer["job"]["state"] in {"cancelling", "cancelled"}
    frames = [f for f in client.received if f.get("job", {}).get("id") == job_id]
    if frames[-1]["job"]["state"] != "cancelled":
        frames += await client.until_final(job_id, timeout=10)
    assert frames[-1]["type"] in {"job.cancelled", "job.snapshot"}
    assert frames[-1]["job"]["state"] == "cancelled"
    assert frames[-1]["job"]["progress"]["current"] < 100
    assert await client.frames_during(1.5) == []  # no frame of the job after its final one
    listing = await client.answer({"type": "job.list", "limit": 5})
    assert next(j for j in listing["jobs"] if j["id"] == job_id)["state"] == "cancelled"
    await client.close()


async def moved_past(session: HttpSession, job_id: str, seq: int) -> None:
    """Until the job's ``seq``, read over the HTTP API while no socket is open, is past ``seq``."""

    async def past() -> bool:
        status, job = await asyncio.to_thread(session.json, "GET", f"/api/jobs/{job_id}/")
        return status == 200 and int(job["seq"]) > seq

    await wait_for_async(past, 10, interval=0.1, desc=f"job {job_id} to move past seq {seq}")


async def test_reconnect_mid_job_gets_snapshot_then_live_frames(demo: HttpSession) -> None:
    first = await JobsClient.open(demo)
    accepted = await first.answer({"type": "job.start", "kind": "simulated", "params": {"step": 5, "interval_ms": 200}})
    job_id = accepted["job"]["id"]
    seen = 0
    while seen < 15:
        frame = await first.recv()
        seen = frame.get("job", {}).get("progress", {}).get("current", 0)
    last_seq = frame["job"]["seq"]
    await first.close()
    await moved_past(demo, job_id, last_seq)
    second = await JobsClient.open(demo)
    snapshot = await second.answer({"type": "job.subscribe", "job_id": job_id})
    assert snapshot["type"] == "job.snapshot"
    assert snapshot["job"]["seq"] > last_seq
    assert snapshot["job"]["progress"]["current"] >= seen
    live = await second.until_final(job_id, timeout=30)
    assert live[-1]["type"] == "job.succeeded"
    assert_seq_rises([snapshot, *live])
    await second.close()


#: Viewers of the burst test: more than the channel layer's pool has connections (100).
BURST_VIEWERS = 200


async def test_a_burst_of_subscribes_is_all_answered_and_every_viewer_gets_the_final_frame(demo: HttpSession) -> None:
    # 180 viewers subscribing at once got "internal" (MaxConnectionsError in the web process).
    starter = await JobsClient.open(demo)
    accepted = await starter.answer(
        {"type": "job.start", "kind": "simulated", "params": {"step": 20, "interval_ms": 500}}
    )
    job_id = accepted["job"]["id"]
    viewers = await asyncio.gather(*(JobsClient.open(demo) for _ in range(BURST_VIEWERS)))
    try:
        answers = await asyncio.gather(
            *(viewer.answer({"type": "job.subscribe", "job_id": job_id}, timeout=30) for viewer in viewers)
        )
        refused = [a for a in answers if a["type"] != "job.snapshot"]
        assert not refused, f"{len(refused)} of {BURST_VIEWERS} subscribes failed, e.g. {refused[:3]}"
        finals = await asyncio.gather(*(viewer.until_final(job_id, timeout=60) for viewer in viewers))
        assert {frames[-1]["type"] for frames in finals} == {"job.succeeded"}
    finally:
        await asyncio.gather(*(viewer.close() for viewer in viewers), starter.close())


async def test_seed_endpoint_prog(demo: HttpSession) -> None:
    client = await JobsClient.open(demo, path="/prog/")
    assert await client.recv() == {"accept": True}
    await client.conn.send(json.dumps({"action": "start"}))
    progress = []
    while True:
        frame = await client.recv(timeout=30)
        if frame.get("complete"):
            assert frame == {"complete": True, "progress": 100}
            break
        progress.append(frame["progress"])
    assert progress == sorted(progress)
    assert len(progress) >= 20
    assert all(p % 3 == 0 for p in progress)
    await client.close()


async def test_bad_input_over_the_real_socket(demo: HttpSession, mallory: HttpSession) -> None:
    client = await JobsClient.open(demo)
    before = len((await client.answer({"type": "job.list", "limit": 100}))["jobs"])
    await client.conn.send("{oops")
    assert (await client.recv())["code"] == "invalid_json"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"type": "job.fly"}, "unknown_type"),
        ({"type": "job.start", "kind": "nope", "params": {}}, "unknown_kind"),
        ({"type": "job.start", "kind": "simulated", "params": {"step": 101}}, "invalid_params"),
        ({"type": "job.start", "kind": "csv_profile", "params": {"upload_id": "x"}}, "invalid_params"),
    ]
    for frame, code in cases:
        answer = await client.answer(frame)
        assert (answer["type"], answer["code"]) == ("error", code), answer
    mine = await client.answer({"type": "job.start", "kind": "simulated", "params": {"step": 100, "interval_ms": 50}})
    intruder = await JobsClient.open(mallory)
    for frame_type in ("job.subscribe", "job.cancel"):
        answer = await intruder.answer({"type": frame_type, "job_id": mine["job"]["id"]})
        assert (answer["type"], answer["code"]) == ("error", "not_found")
    after = await client.answer({"type": "job.list", "limit": 100})
    assert len(after["jobs"]) == before + 1  # only the valid start started anything
    await client.close()
    await intruder.close()


async def test_anonymous_and_foreign_origin_handshakes_are_refused_with_403(stack: Stack, demo: HttpSession) -> None:
    anonymous = HttpSession(stack)
    with pytest.raises(InvalidStatus) as info:
        await JobsClient.open(anonymous)
    assert info.value.response.status_code == 403
    with pytest.raises(InvalidStatus) as info:
        await JobsClient.open(demo, origin="http://evil.example")
    assert info.value.response.status_code == 403


def test_uploads_oversized_binary_and_without_csrf(demo: HttpSession, stack: Stack) -> None:
    status, body = demo.upload("big.csv", b"a,b\n" + b"1,2\n" * (UPLOAD_MAX_BYTES // 4 + 10))
    assert status == 413
    assert "too large" in body["message"]
    assert body["code"] == "too_large"
    status, body = demo.upload("x.csv", b"a\n1\n", csrf=False)
    assert (status, body["code"]) == (403, "csrf_failed")
    assert HttpSession(stack).upload("x.csv", b"a\n1\n")[0] in {401, 403}


async def test_binary_upload_ends_failed_with_a_clear_error(demo: HttpSession) -> None:
    png = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
    )
    status, upload = demo.upload("photo.csv", png)
    assert status == 201
    client = await JobsClient.open(demo)
    accepted = await client.answer(
        {"type": "job.start", "kind": "csv_profile", "params": {"upload_id": upload["upload_id"]}}
    )
    final = (await client.until_final(accepted["job"]["id"], timeout=30))[-1]
    assert final["type"] == "job.failed"
    assert (
        final["job"]["error"]
        == "photo.csv is not a CSV file we can read: binary content (NUL bytes): not a CSV text file"
    )
    await client.close()


async def test_flower_requires_credentials_and_sees_the_tasks(stack: Stack, demo: HttpSession) -> None:
    client = await JobsClient.open(demo)
    accepted = await client.answer(
        {"type": "job.start", "kind": "simulated", "params": {"step": 50, "interval_ms": 50}}
    )
    await client.until_final(accepted["job"]["id"])
    await client.close()
    flower = f"http://127.0.0.1:{stack.flower_port}"
    assert http_status(f"{flower}/api/tasks") == 401
    token = base64.b64encode(f"demo:{stack.env['DEMO_PASSWORD']}".encode()).decode()
    request = urllib.request.Request(f"{flower}/api/tasks?limit=500", headers={"Authorization": f"Basic {token}"})

    def names() -> set[str]:
        with urllib.request.urlopen(request, timeout=5) as resp:
            tasks = json.loads(resp.read())
        return {t.get("name") for t in tasks.values()}

    wanted = {"tasks_app.run_job", "tasks_app.poll_tick"}
    wait_for(lambda: wanted <= names(), 20, interval=0.5, desc=f"Flower to list {sorted(wanted)}")


def test_the_readmes_script_client_runs_a_job_over_the_socket(stack: Stack) -> None:
    example = ROOT / "docs" / "examples" / "watch_job.py"
    readme = (ROOT / "README.md").read_text()
    assert f"```python\n{example.read_text()}```" in readme, "the README shows the example word for word"
    env = {**stack.env, "JOBS_URL": stack.http_url, "JOBS_USERNAME": "demo", "JOBS_PASSWORD": DEMO_PASSWORD}
    result = subprocess.run(
        [sys.executable, str(example)], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("job.accepted "), lines
    assert lines[-1] == "job.succeeded succeeded 100.0", lines


def chunked_upload(session: HttpSession, content: bytes) -> tuple[int, dict[str, Any]]:
    """``POST /uploads/`` with a chunked body (no Content-Length), as a streaming client sends it."""
    boundary = "chunked-boundary-7d1f"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()
    body = head + content + f"\r\n--{boundary}--\r\n".encode()
    connection = http.client.HTTPConnection("127.0.0.1", session.stack.port, timeout=30)
    try:
        connection.request(
            "POST",
            "/uploads/",
            body=(body[i : i + 65536] for i in range(0, len(body), 65536)),
            headers={
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                "Cookie": session.cookie_header,
                "X-CSRFToken": session.cookie("csrftoken"),
                "Host": "127.0.0.1",
            },
            encode_chunked=True,
        )
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_a_chunked_upload_without_content_length_is_refused_with_411_and_stores_nothing(
    demo: HttpSession, stack: Stack
) -> None:
    stored_before = sorted((stack.workdir / "media").rglob("*.csv"))
    for content in (b"a,b\n" + b"1,2\n" * (UPLOAD_MAX_BYTES // 4 + 10), b"a,b\n1,2\n"):
        status, body = chunked_upload(demo, content)
        assert (status, body["code"]) == (411, "length_required"), body
        assert "Content-Length" in body["message"]
    assert sorted((stack.workdir / "media").rglob("*.csv")) == stored_before
