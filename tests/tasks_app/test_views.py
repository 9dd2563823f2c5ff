"""HTTP views: the dashboard, the job page and the upload endpoint's answers."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from tasks_app.models import Job, Upload
from tasks_app.views import DASHBOARD_PAGE_SIZE
from tests.factories import make_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def logged_in(user) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.get("/")  # sets the CSRF cookie
    return client


def post_file(client: Client, content: bytes, name: str = "a.csv", csrf: bool = True):
    headers = {"X-CSRFToken": client.cookies["csrftoken"].value} if csrf else {}
    return client.post("/uploads/", {"file": SimpleUploadedFile(name, content)}, headers=headers)


def test_page_requires_login_and_carries_the_config(client, logged_in):
    assert client.get("/").status_code == 302
    page = logged_in.get("/")
    assert page.status_code == 200
    config = json.loads(page.content.split(b'id="jobs-config" type="application/json">')[1].split(b"</script>")[0])
    assert config["wsPath"] == "/ws/jobs/"
    assert config["uploadUrl"] == "/uploads/"


def test_upload_stores_the_file(logged_in, user):
    response = post_file(logged_in, b"a,b\n1,2\n", "data.csv")
    assert response.status_code == 201
    body = response.json()
    assert (body["name"], body["size"]) == ("data.csv", 8)
    upload = Upload.objects.get(pk=body["upload_id"])
    assert upload.owner == user
    with upload.file.open("rb") as stored:
        assert stored.read() == b"a,b\n1,2\n"


def test_upload_errors_are_json_with_a_message(client, logged_in, settings):
    assert client.post("/uploads/").json()["code"] == "not_authenticated"
    assert logged_in.get("/uploads/").status_code == 405
    missing = logged_in.post("/uploads/", {}, HTTP_X_CSRFTOKEN=logged_in.cookies["csrftoken"].value)
    assert (missing.status_code, missing.json()["fields"]) == (400, {"file": ["this field is required"]})
    assert post_file(logged_in, b"").status_code == 400
    settings.UPLOAD_MAX_BYTES = 10
    too_big = post_file(logged_in, b"x" * 11)
    assert too_big.status_code == 413
    assert "limit is 10 bytes" in too_big.json()["message"]
    no_csrf = post_file(logged_in, b"a\n1\n", csrf=False)
    assert (no_csrf.status_code, no_csrf.json()["code"]) == (403, "csrf_failed")
    assert Upload.objects.count() == 0


def card_ids(response) -> list[str]:
    return re.findall(r'<article class="job" data-job-id="([0-9a-f-]{36})"', response.content.decode())


def test_dashboard_lists_active_jobs_first_then_history_paginated(logged_in, user, other_user):
    finished = [make_job(user, state="succeeded", minutes_ago=i) for i in range(1, 23)]  # newest first
    active = [
        make_job(user, state="running", minutes_ago=30, progress_current=40, progress_total=100),
        make_job(user, state="pending", minutes_ago=60),
    ]
    make_job(other_user, state="running", minutes_ago=0)
    first = logged_in.get("/")
    expected = [str(j.id) for j in active + finished]
    assert card_ids(first) == expected[:DASHBOARD_PAGE_SIZE]
    assert 'value="40"' in first.content.decode()  # rendered before any script runs
    assert "page 1 of 2" in first.content.decode()
    second = logged_in.get("/", {"page": 2})
    assert card_ids(second) == expected[DASHBOARD_PAGE_SIZE:]
    assert card_ids(logged_in.get("/", {"page": "junk"})) == card_ids(first)
    assert card_ids(logged_in.get("/", {"page": 99})) == card_ids(second)
    snapshots = json.loads(first.content.split(b'id="jobs-data" type="application/json">')[1].split(b"</script>")[0])
    assert [s["id"] for s in snapshots] == expected[:DASHBOARD_PAGE_SIZE]
    assert f'href="/jobs/{active[0].id}/"' in first.content.decode()


def test_job_page_shows_the_users_job_and_404s_for_others(client, logged_in, user, other_user):
    mine = make_job(user, state="running", minutes_ago=1, progress_current=55, progress_total=100)
    theirs = make_job(other_user, state="running", minutes_ago=1)
    assert client.get(f"/jobs/{mine.id}/").status_code == 302  # login required
    page = logged_in.get(f"/jobs/{mine.id}/")
    assert page.status_code == 200
    assert card_ids(page) == [str(mine.id)]
    body = page.content.decode()
    assert 'value="55"' in body
    assert "<h1" in body
    config = json.loads(page.content.split(b'id="jobs-config" type="application/json">')[1].split(b"</script>")[0])
    assert (config["mode"], config["jobId"]) == ("detail", str(mine.id))
    for job_id in (theirs.id, uuid.uuid4()):
        missing = logged_in.get(f"/jobs/{job_id}/")
        assert missing.status_code == 404
        assert str(job_id) not in missing.content.decode()
        assert "no such job" in missing.content.decode()
    assert logged_in.get("/jobs/not-a-uuid/").status_code == 404


def test_job_page_shows_result_and_error_without_script(logged_in, user):
    done = make_job(user, state="succeeded", minutes_ago=1, progress_current=100, progress_total=100)
    Job.objects.filter(pk=done.pk).update(result={"steps": 34})
    failed = make_job(user, state="failed", minutes_ago=1, error="simulated failure at 40%")
    assert "&quot;steps&quot;: 34" in logged_in.get(f"/jobs/{done.id}/").content.decode()
    assert "simulated failure at 40%" in logged_in.get(f"/jobs/{failed.id}/").content.decode()


def card_html(response, job: Job) -> str:
    body = response.content.decode()
    return body.split(f'data-job-id="{job.id}"', 1)[1].split("</article>", 1)[0]


def test_a_final_card_looks_final_without_script(logged_in, user):
    params = {"upload_id": "u", "name": "photo.png", "size": 4_096}
    failed = make_job(
        user,
        state="failed",
        minutes_ago=1,
        kind="csv_profile",
        params=params,
        progress_message="started",
        error="photo.png is binary",
    )
    card = card_html(logged_in.get(f"/jobs/{failed.id}/"), failed)
    assert 'value="0"' in card  # a still, empty bar: no moving stripe
    assert "total unknown" not in card
    assert "started" not in card  # the last message of a failed job is stale: its error says what happened
    assert "photo.png is binary" in card
    assert f"CSV profile · {str(failed.id)[:8]}" in card
    assert "photo.png, 4.1 KB" in card  # the kind's summary of the parameters

    running = make_job(user, state="running", minutes_ago=1, progress_current=336_776, progress_message="reading")
    card = card_html(logged_in.get(f"/jobs/{running.id}/"), running)
    assert "value=" not in card.split("<progress", 1)[1].split(">", 1)[0]  # total unknown: still working
    assert "336,776 (total unknown)" in card
    assert "reading" in card
    assert "step 3% every 200 ms" in card


def test_a_csv_card_shows_sizes_and_other_cards_counts_with_separators(logged_in, user):
    params = {"upload_id": "u", "name": "flights.csv", "size": 31_053_850}
    profile = make_job(
        user, state="running", minutes_ago=1, kind="csv_profile", params=params, progress_total=31_053_850
    )
    assert "0 bytes of 31.1 MB" in card_html(logged_in.get(f"/jobs/{profile.id}/"), profile)
    primes = make_job(
        user,
        state="running",
        minutes_ago=1,
        kind="primes",
        params={"limit": 100_000},
        progress_current=12_345,
        progress_total=100_000,
    )
    card = card_html(logged_in.get(f"/jobs/{primes.id}/"), primes)
    assert "12,345 / 100,000" in card
    assert f"Count primes · {str(primes.id)[:8]}" in card
    assert "below 100,000" in card


def test_favicon_redirects_to_the_sites_icon(client):
    answer = client.get("/favicon.ico")
    assert answer.status_code == 301
    assert answer["Location"] == "/static/jobs/favicon.svg"
    page = client.get("/accounts/login/").content.decode()
    assert '<link rel="icon" href="/static/jobs/favicon.svg" type="image/svg+xml">' in page
