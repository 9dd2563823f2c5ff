"""HTTP views: the page and the upload endpoint's answers."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from tasks_app.models import Upload

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
