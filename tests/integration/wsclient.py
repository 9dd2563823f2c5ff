"""A small protocol-v1 client over a real WebSocket (the ``websockets`` library).

Its ``recv_until`` and ``frames_during`` are the frame-level waiting helpers: a socket is
awaited frame by frame, not polled, so they take the place of tests/waiting.py's ``wait_for``
for frames (a deadline over successive ``recv`` calls).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from tests.integration.stack import HttpSession

FINAL = {"succeeded", "failed", "cancelled"}
Frame = dict[str, Any]
_ids = itertools.count(1)


class JobsClient:
    """Sends frames, keeps every frame received, and waits for frames that match."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.received: list[dict[str, Any]] = []

    @classmethod
    async def open(cls, session: HttpSession, path: str = "/ws/jobs/", origin: str | None = None) -> JobsClient:
        conn = await connect(
            session.stack.ws_url + path,
            additional_headers={"Cookie": session.cookie_header},
            origin=origin or session.stack.origin,  # type: ignore[arg-type]
            open_timeout=10,
        )
        return cls(conn)

    async def send(self, frame: dict[str, Any]) -> str:
        rid = frame.setdefault("request_id", f"t{next(_ids)}")
        await self.conn.send(json.dumps(frame))
        return str(rid)

    async def recv(self, timeout: float = 10) -> dict[str, Any]:
        frame = json.loads(await asyncio.wait_for(self.conn.recv(), timeout))
        self.received.append(frame)
        return frame

    async def recv_until(self, done: Callable[[Frame], bool], timeout: float) -> Frame:
        """The frame-level ``wait_for``: receive frames (each kept in ``received``) until one
        satisfies ``done``, and return it. Raises ``TimeoutError`` when ``timeout`` seconds pass
        first (over all the frames, not each)."""
        deadline = time.monotonic() + timeout
        while True:
            got = await self.recv(max(0.01, deadline - time.monotonic()))
            if done(got):
                return got

    async def frames_during(self, seconds: float) -> list[tuple[float, Frame]]:
        """Every frame received during the next ``seconds`` (each kept in ``received``), with its
        arrival time (``time.monotonic()``): ``[]`` asserts that nothing arrives for a while."""
        got: list[tuple[float, Frame]] = []
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                frame = await self.recv(remaining)
            except TimeoutError:
                break
            got.append((time.monotonic(), frame))
        return got

    async def answer(self, frame: dict[str, Any], timeout: float = 10) -> dict[str, Any]:
        """Send ``frame`` and return the frame echoing its request_id (live frames are kept)."""
        rid = await self.send(frame)
        return await self.recv_until(lambda got: got.get("request_id") == rid, timeout)

    async def until_final(self, job_id: str, timeout: float = 60) -> list[dict[str, Any]]:
        """Every frame of ``job_id`` received from now until its final frame."""
        frames = []

        def final(got: Frame) -> bool:
            if got.get("job", {}).get("id") != job_id:
                return False
            frames.append(got)
            return got["job"]["state"] in FINAL

        await self.recv_until(final, timeout)
        return frames

    async def close(self) -> None:
        await self.conn.close()


class Viewer:
    """A protocol-v1 socket that keeps every frame of the jobs it follows, with arrival times."""

    #: Viewers opened and not yet closed: a test module's fixture closes them after each test.
    opened: list[Viewer] = []

    def __init__(self, client: JobsClient) -> None:
        self.client = client
        self.frames: list[tuple[float, Frame]] = []

    @classmethod
    async def open(cls, session: HttpSession) -> Viewer:
        viewer = cls(await JobsClient.open(session))
        cls.opened.append(viewer)
        return viewer

    async def start(self, kind: str, params: dict[str, Any]) -> str:
        accepted = await self.client.answer({"type": "job.start", "kind": kind, "params": params})
        assert accepted["type"] == "job.accepted", accepted
        self.frames.append((time.monotonic(), accepted))
        return str(accepted["job"]["id"])

    async def send(self, frame: Frame) -> Frame:
        answer = await self.client.answer(frame)
        if "job" in answer:
            self.frames.append((time.monotonic(), answer))
        return answer

    def of(self, job_id: str) -> list[tuple[float, Frame]]:
        return [(t, f) for t, f in self.frames if f.get("job", {}).get("id") == job_id]

    def last(self, job_id: str) -> Frame:
        return self.of(job_id)[-1][1]

    async def until(self, predicate: Callable[[Frame], bool], timeout: float) -> Frame:
        """The first job frame that satisfies ``predicate``: one already received (answers
        included), or the next one that arrives (the frame-level waiting helper: frames are
        awaited one by one until ``timeout`` seconds have passed, then ``AssertionError``)."""
        for _, frame in self.frames:
            if predicate(frame):
                return frame
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no such frame within {timeout} s; last frames: {self.frames[-3:]}")
            frame = await self.client.recv(remaining)
            if "job" in frame:
                self.frames.append((time.monotonic(), frame))
                if predicate(frame):
                    return frame

    async def final(self, job_id: str, timeout: float = 90) -> Frame:
        """The job's final frame: one already received, or the next."""
        return await self.until(lambda f: f["job"]["id"] == job_id and f["job"]["state"] in FINAL, timeout)

    async def frames_during(self, seconds: float) -> list[Frame]:
        """Every job frame received during the next ``seconds`` (the fault's duration), kept
        with its arrival time (:meth:`JobsClient.frames_during`)."""
        timed = [(t, frame) for t, frame in await self.client.frames_during(seconds) if "job" in frame]
        self.frames.extend(timed)
        return [frame for _, frame in timed]

    def moved_after(self, job_id: str, since: float) -> float:
        """Seconds from ``since`` to the first frame of the job that shows it moving: a newer
        ``seq`` whose state, progress or retry notice differs from the last frame before."""

        def visible(frame: Frame) -> tuple[Any, ...]:
            job = frame["job"]
            return (job["state"], job["progress"]["current"], job["progress"]["message"], str(job["retrying"]))

        before = [f for t, f in self.of(job_id) if t < since]
        last_seq, last_seen = (before[-1]["job"]["seq"], visible(before[-1])) if before else (0, None)
        later = [t for t, f in self.of(job_id) if t >= since and f["job"]["seq"] > last_seq and visible(f) != last_seen]
        assert later, f"job {job_id} never moved after the fault"
        return later[0] - since

    def assert_sane(self, job_id: str) -> None:
        """``seq`` never went backwards, and nothing followed the final frame."""
        frames = [f for _, f in self.of(job_id)]
        seqs = [f["job"]["seq"] for f in frames]
        assert seqs == sorted(seqs), seqs
        finals = [i for i, f in enumerate(frames) if f["job"]["state"] in FINAL]
        assert finals, [f["job"]["state"] for f in frames]
        assert finals[0] == len(frames) - 1, [f["job"]["state"] for f in frames]

    async def close(self) -> None:
        await self.client.close()


def percent(frame: Frame) -> float:
    return float(frame["job"]["progress"]["percent"] or 0)


def progressing(job_id: str, below: float = 101) -> Callable[[Frame], bool]:
    """A frame of ``job_id`` with its work under way: percent above 0 (and below ``below``)."""
    return lambda frame: frame["job"]["id"] == job_id and 0 < percent(frame) < below
