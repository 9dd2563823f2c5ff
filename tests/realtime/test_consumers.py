"""The consumers through ``WebsocketCommunicator`` with the in-memory channel layer.

Jobs are created through the real services (SQLite, real broker in the test Redis); the
poll chain is driven by calling the services, so the events reach the consumer through
the channel layer exactly as a worker's would.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from realtime.consumers import JobsConsumer, SeedProgressConsumer
from realtime.protocol import CLOSE_FRAME_TOO_LARGE, CLOSE_RATE_LIMITED
from tasks_app import services
from tasks_app.models import Job

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("memory_layer", "broker")]


async def connect(user: Any, consumer: Any = JobsConsumer, path: str = "/ws/jobs/") -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(consumer.as_asgi(), path)
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def ask(comm: WebsocketCommunicator, frame: dict[str, Any]) -> dict[str, Any]:
    await comm.send_json_to(frame)
    return await comm.receive_json_from(timeout=3)


async def job_count() -> int:
    return await database_sync_to_async(Job.objects.count)()


async def test_anonymous_socket_is_refused():
    communicator = WebsocketCommunicator(JobsConsumer.as_asgi(), "/ws/jobs/")
    communicator.scope["user"] = AnonymousUser()
    connected, _ = await communicator.connect()
    assert connected is False


async def test_start_answers_accepted_and_live_frames_follow_in_seq_order(user):
    comm = await connect(user)
    answer = await ask(comm, {"type": "job.start", "kind": "simulated", "params": {"step": 50}, "request_id": "r1"})
    assert answer["type"] == "job.accepted"
    assert answer["request_id"] == "r1"
    job = answer["job"]
    assert job["state"] == "pending"
    assert job["progress"] == {
        "current": 0,
        "total": None,
        "percent": None,
        "message": "",
        "rate": None,
        "eta_seconds": None,
    }
    assert job["retrying"] is None
    await database_sync_to_async(services.job_run)(job_id=job["id"])
    running = await comm.receive_json_from(timeout=3)
    assert (running["type"], running["job"]["state"], running["job"]["seq"]) == ("job.progress", "running", 2)
    await database_sync_to_async(Job.objects.filter(pk=job["id"]).update)(started_at=None)
    await comm.disconnect()


async def test_stale_live_events_are_dropped_and_nothing_follows_the_final_frame(user, memory_layer):
    comm = await connect(user)
    answer = await ask(comm, {"type": "job.start", "kind": "simulated", "params": {}})
    job = answer["job"]
    group = f"job.{job['id'].replace('-', '')}"

    def event(state: str, seq: int, frame: str = "job.progress") -> dict[str, Any]:
        return {"type": "job.event", "frame": frame, "job": {**job, "state": state, "seq": seq}}

    await memory_layer.group_send(group, event("running", 3))
    await memory_layer.group_send(group, event("running", 2))  # older: dropped
    await memory_layer.group_send(group, event("succeeded", 4, "job.succeeded"))
    await memory_layer.group_send(group, event("running", 5))  # after the final: never sent
    received = [await comm.receive_json_from(timeout=3) for _ in range(2)]
    assert [(f["type"], f["job"]["seq"]) for f in received] == [("job.progress", 3), ("job.succeeded", 4)]
    assert await comm.receive_nothing(timeout=0.2)
    await comm.disconnect()


async def test_a_job_event_is_relayed_without_a_database_thread_hop(user, memory_layer, monkeypatch):
    """Channels closes old database connections in a worker thread before every handler
    (channels/consumer.py:73); the relay of job events skips it (``dispatch``)."""
    import channels.consumer

    hops: list[str] = []
    real = channels.consumer.aclose_old_connections

    async def counting() -> None:
        hops.append("hop")
        await real()

    monkeypatch.setattr(channels.consumer, "aclose_old_connections", counting)
    comm = await connect(user)
    job = (await ask(comm, {"type": "job.start", "kind": "simulated", "params": {}}))["job"]
    before = len(hops)
    assert before > 0, "the socket's own frames still go through Channels' dispatch"
    group = f"job.{job['id'].replace('-', '')}"
    for seq in (3, 4, 5):
        await memory_layer.group_send(group, {"type": "job.event", "frame": "job.progress", "job": {**job, "seq": seq}})
    received = [await comm.receive_json_from(timeout=3) for _ in range(3)]
    assert [f["job"]["seq"] for f in received] == [3, 4, 5]
    assert len(hops) == before, "no thread hop for job events"
    await comm.disconnect()


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{not json", "invalid_json"),
        ("[1, 2]", "invalid_message"),
        ('{"type": 7}', "invalid_message"),
        ('{"type": "job.explode"}', "unknown_type"),
        ('{"type": "job.start", "params": {}}', "invalid_message"),
        ('{"type": "job.start", "kind": "simulated", "params": []}', "invalid_message"),
        ('{"type": "job.list", "limit": 0}', "invalid_message"),
        ('{"type": "job.list", "request_id": "' + "x" * 65 + '"}', "invalid_message"),
        ('{"type": "job.start", "kind": "teleport", "params": {}}', "unknown_kind"),
        ('{"type": "job.subscribe", "job_id": "not-a-uuid"}', "not_found"),
        ('{"type": "job.cancel", "job_id": "00000000-0000-0000-0000-000000000000"}', "not_found"),
    ],
)
async def test_bad_input_gets_its_error_code_keeps_the_socket_and_starts_nothing(user, raw, code):
    comm = await connect(user)
    await comm.send_to(text_data=raw)
    answer = await comm.receive_json_from(timeout=3)
    assert answer["type"] == "error"
    assert answer["code"] == code
    assert answer["message"]
    assert (await ask(comm, {"type": "job.list"}))["type"] == "job.list"  # still open
    assert await job_count() == 0
    await comm.disconnect()


async def test_invalid_params_error_names_the_fields_and_echoes_request_id(user):
    comm = await connect(user)
    answer = await ask(
        comm,
        {
            "type": "job.start",
            "kind": "simulated",
            "params": {"step": 0, "interval_ms": 20},
            "request_id": "abc",
        },
    )
    assert answer == {
        "type": "error",
        "code": "invalid_params",
        "message": "invalid parameters",
        "request_id": "abc",
        "fields": {
            "step": ["Input should be greater than or equal to 1"],
            "interval_ms": ["Input should be greater than or equal to 50"],
        },
    }
    assert await job_count() == 0
    await comm.disconnect()


async def test_another_users_job_is_not_found_for_subscribe_and_cancel(user, other_user):
    job = await database_sync_to_async(services.job_start)(owner=user, kind="simulated", params={})
    comm = await connect(other_user)
    for frame_type in ("job.subscribe", "job.cancel"):
        answer = await ask(comm, {"type": frame_type, "job_id": str(job.id)})
        assert (answer["type"], answer["code"]) == ("error", "not_found")
    listing = await ask(comm, {"type": "job.list"})
    assert listing["jobs"] == []
    await comm.disconnect()


async def test_subscribe_list_unsubscribe_and_cancel(user):
    job = await database_sync_to_async(services.job_start)(owner=user, kind="simulated", params={})
    comm = await connect(user)
    snapshot = await ask(comm, {"type": "job.subscribe", "job_id": str(job.id), "request_id": "s"})
    assert (snapshot["type"], snapshot["job"]["id"], snapshot["request_id"]) == ("job.snapshot", str(job.id), "s")
    listing = await ask(comm, {"type": "job.list", "limit": 5})
    assert [j["id"] for j in listing["jobs"]] == [str(job.id)]
    cancelled = await ask(comm, {"type": "job.cancel", "job_id": str(job.id)})
    assert (cancelled["type"], cancelled["job"]["state"]) == ("job.snapshot", "cancelled")
    again = await ask(comm, {"type": "job.cancel", "job_id": str(job.id)})
    assert (again["type"], again["code"]) == ("error", "not_cancellable")
    answer = await ask(comm, {"type": "job.unsubscribe", "job_id": str(job.id)})
    assert answer == {"type": "job.unsubscribed", "job_id": str(job.id), "request_id": None}
    await comm.disconnect()


async def test_oversized_frame_closes_with_4400(user, settings):
    settings.WS_MAX_FRAME_BYTES = 1024
    comm = await connect(user)
    await comm.send_to(text_data=json.dumps({"type": "job.list", "pad": "x" * 2000}))
    closed = await comm.receive_output(timeout=3)
    assert closed == {"type": "websocket.close", "code": CLOSE_FRAME_TOO_LARGE}


async def test_flood_is_rate_limited_then_closed_with_4429(user, settings):
    settings.WS_RATE_BURST = 3
    settings.WS_RATE_PER_S = 0.001
    settings.WS_RATE_STRIKES_BEFORE_CLOSE = 2
    comm = await connect(user)
    for _ in range(3):
        assert (await ask(comm, {"type": "job.list"}))["type"] == "job.list"
    for _ in range(2):
        answer = await ask(comm, {"type": "job.start", "kind": "simulated", "params": {}})
        assert (answer["type"], answer["code"]) == ("error", "rate_limited")
    await comm.send_json_to({"type": "job.list"})
    closed = await comm.receive_output(timeout=3)
    assert closed == {"type": "websocket.close", "code": CLOSE_RATE_LIMITED}
    assert await job_count() == 0


async def test_seed_endpoint_speaks_the_original_protocol(user, memory_layer):
    comm = await connect(user, SeedProgressConsumer, "/prog/")
    assert await comm.receive_json_from(timeout=3) == {"accept": True}
    await comm.send_json_to({"action": "dance"})
    assert "error" in await comm.receive_json_from(timeout=3)
    await comm.send_json_to({"action": "start"})
    await comm.receive_nothing(timeout=0.2)
    job = await database_sync_to_async(Job.objects.get)()
    assert job.params == {"step": 3, "interval_ms": 200}
    group = f"job.{job.id.hex}"
    base = {"id": str(job.id), "kind": "simulated", "error": None}
    for seq, (state, current) in enumerate([("running", 0), ("running", 3), ("running", 3), ("succeeded", 100)], 2):
        await memory_layer.group_send(
            group,
            {
                "type": "job.event",
                "frame": "x",
                "job": {**base, "state": state, "seq": seq, "progress": {"current": current}},
            },
        )
    received = [await comm.receive_json_from(timeout=3) for _ in range(3)]
    assert received == [{"progress": 0}, {"progress": 3}, {"complete": True, "progress": 100}]
    await comm.disconnect()


async def test_seed_endpoint_has_the_same_frame_size_limit(user, settings):
    settings.WS_MAX_FRAME_BYTES = 1024
    comm = await connect(user, SeedProgressConsumer, "/prog/")
    assert await comm.receive_json_from(timeout=3) == {"accept": True}
    await comm.send_to(text_data=json.dumps({"action": "start", "pad": "x" * 2000}))
    closed = await comm.receive_output(timeout=3)
    assert closed == {"type": "websocket.close", "code": CLOSE_FRAME_TOO_LARGE}
    assert await job_count() == 0


async def test_seed_endpoint_flood_is_refused_then_closed_and_queued_frames_start_nothing(user, settings):
    settings.WS_RATE_BURST = 2
    settings.WS_RATE_PER_S = 0.001
    settings.WS_RATE_STRIKES_BEFORE_CLOSE = 3
    comm = await connect(user, SeedProgressConsumer, "/prog/")
    assert await comm.receive_json_from(timeout=3) == {"accept": True}
    for _ in range(40):  # sent at once: all queued before the consumer handles the first
        await comm.send_json_to({"action": "start"})
    answers = []
    while (out := await comm.receive_output(timeout=3))["type"] == "websocket.send":
        answers.append(json.loads(out["text"]))
    assert answers == [{"error": "too many frames; slow down"}] * 3
    assert out == {"type": "websocket.close", "code": CLOSE_RATE_LIMITED}
    assert await job_count() == 2  # the burst; nothing queued behind the close started


async def test_seed_endpoint_answers_bad_frames_without_closing(user):
    comm = await connect(user, SeedProgressConsumer, "/prog/")
    assert await comm.receive_json_from(timeout=3) == {"accept": True}
    for frame in ("[" * 50_000, "{oops"):  # nested past the recursion limit; not JSON
        await comm.send_to(text_data=frame)
        assert await comm.receive_json_from(timeout=3) == {"error": 'unknown message; send {"action": "start"}'}
    await comm.send_to(bytes_data=b"\x00\x01")
    assert await comm.receive_json_from(timeout=3) == {"error": 'unknown message; send {"action": "start"}'}
    assert await job_count() == 0
    await comm.disconnect()
