"""The one job object: what the socket, the HTTP API, the terminal and the page's tests use.

The page's JavaScript tests (``tests/js``, ``make jstest``) run on the frames of
``tests/js/fixtures/job_frames.json``; here those frames are read as the server's
:class:`~tasks_app.jobobject.JobObject`, so the page is tested on what the server sends.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from realtime import messaging
from realtime.protocol import T_LIST
from tasks_app.jobobject import JobObject
from tasks_app.selectors import job_snapshot
from tests.factories import make_job

FIXTURE = Path(__file__).resolve().parent / "js" / "fixtures" / "job_frames.json"
JOB_FRAME_TYPES = {
    messaging.FRAME_ACCEPTED,
    messaging.FRAME_SNAPSHOT,
    messaging.FRAME_PROGRESS,
    messaging.FRAME_SUCCEEDED,
    messaging.FRAME_FAILED,
    messaging.FRAME_CANCELLED,
}
FRAMES: list[dict[str, Any]] = json.loads(FIXTURE.read_text())


def jobs_of(frame: dict[str, Any]) -> list[dict[str, Any]]:
    return frame["jobs"] if frame["type"] == T_LIST else [frame["job"]]


@pytest.mark.parametrize("frame", FRAMES, ids=lambda f: f"{f['type']}")
def test_every_job_of_the_pages_fixture_is_the_servers_job_object(frame):
    assert frame["type"] in JOB_FRAME_TYPES | {T_LIST}
    for job in jobs_of(frame):
        parsed = JobObject.model_validate(job)
        # Nothing the model does not know, nothing it would add: the same keys, the same values.
        assert parsed.model_dump(mode="json") == job


@pytest.mark.django_db
def test_the_snapshot_of_a_row_is_a_job_object_with_the_fixtures_keys(user):
    snapshot = job_snapshot(make_job(user, params={"step": 10, "interval_ms": 200}))
    assert JobObject.model_validate(snapshot).model_dump(mode="json") == snapshot
    assert set(snapshot) == set(FRAMES[0]["job"])
    assert set(snapshot["progress"]) == set(FRAMES[0]["job"]["progress"])
