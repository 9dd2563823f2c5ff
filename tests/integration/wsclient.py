"""A small protocol-v1 client over a real WebSocket (the ``websockets`` library)."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from tests.integration.stack import HttpSession

FINAL = {"succeeded", "failed", "cancelled"}
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

    async def answer(self, frame: dict[str, Any], timeout: float = 10) -> dict[str, Any]:
        """Send ``frame`` and return the frame echoing its request_id (live frames are kept)."""
        rid = await self.send(frame)
        deadline = time.monotonic() + timeout
        while True:
            got = await self.recv(max(0.01, deadline - time.monotonic()))
            if got.get("request_id") == rid:
                return got

    async def until_final(self, job_id: str, timeout: float = 60) -> list[dict[str, Any]]:
        """Every frame of ``job_id`` received from now until its final frame."""
        frames = []
        deadline = time.monotonic() + timeout
        while True:
            got = await self.recv(max(0.01, deadline - time.monotonic()))
            if got.get("job", {}).get("id") == job_id:
                frames.append(got)
                if got["job"]["state"] in FINAL:
                    return frames

    async def close(self) -> None:
        await self.conn.close()
