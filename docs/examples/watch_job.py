"""Start a job and watch it from a script: log in, then open the socket with the session cookie
and an Origin header (README "Clients outside a browser"). Needs ``pip install websockets``."""

import asyncio
import http.cookiejar
import json
import os
import urllib.parse
import urllib.request

from websockets.asyncio.client import connect
from websockets.typing import Origin

BASE = os.environ.get("JOBS_URL", "http://127.0.0.1:8000")
USERNAME = os.environ.get("JOBS_USERNAME", "demo")
PASSWORD = os.environ.get("JOBS_PASSWORD", "demo")


def login() -> str:
    """Log in with Django's login form; returns the Cookie header (session and CSRF cookies)."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(f"{BASE}/accounts/login/").read()
    csrf = next(cookie.value for cookie in jar if cookie.name == "csrftoken")
    form = {"username": USERNAME, "password": PASSWORD, "csrfmiddlewaretoken": csrf}
    opener.open(f"{BASE}/accounts/login/", data=urllib.parse.urlencode(form).encode()).read()
    if not any(cookie.name == "sessionid" for cookie in jar):
        raise SystemExit("login failed: check JOBS_USERNAME and JOBS_PASSWORD")
    return "; ".join(f"{cookie.name}={cookie.value}" for cookie in jar)


async def main() -> None:
    cookie = login()
    # Without an Origin the server cannot tell a script from a foreign page: HTTP 403.
    async with connect(
        BASE.replace("http", "ws", 1) + "/ws/jobs/", additional_headers={"Cookie": cookie}, origin=Origin(BASE)
    ) as ws:
        await ws.send(
            json.dumps({"type": "job.start", "kind": "simulated", "params": {"step": 20, "interval_ms": 100}})
        )
        seen = 0
        async for raw in ws:
            frame = json.loads(raw)
            job = frame.get("job")
            if job is None or job["seq"] <= seen:
                continue  # not a job frame, or one already passed
            seen = job["seq"]
            print(frame["type"], job["state"], job["progress"]["percent"])
            if job["state"] in ("succeeded", "failed", "cancelled"):
                break


asyncio.run(main())
