"""The HTTP JSON API at /api/: every endpoint, both authentication schemes, the error codes,
pagination, the api_token command, and every response checked against the served OpenAPI schema.

Real parts: the database, Django's test client through the whole middleware stack, the real
broker (Redis) for dispatched tasks, the in-memory channel layer for published frames.

(Over ~350 lines: one case per endpoint and error code of the HTTP API, each checked against the
served schema.)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import re
import secrets
import uuid
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from openapi_core import OpenAPI
from openapi_core.contrib.django import DjangoOpenAPIRequest, DjangoOpenAPIResponse
from openapi_core.validation.response.exceptions import InvalidData

from tasks_app import errors, services, tokens
from tasks_app.api.errors import STATUS_BY_CODE
from tasks_app.models import ApiToken, Job, JobState
from tasks_app.selectors import job_snapshot

pytestmark = pytest.mark.django_db

SIMULATED = {"kind": "simulated", "params": {"step": 5}}


@pytest.fixture(scope="module")
def openapi() -> OpenAPI:
    """The schema as served (``from_dict`` also validates it as an OpenAPI document)."""
    response = Client().get("/api/openapi.json")
    assert response.status_code == 200
    return OpenAPI.from_dict(response.json())


class Api:
    """A Django test client whose every response is validated against the served schema."""

    def __init__(self, client: Client, openapi: OpenAPI, *, headers: dict[str, str] | None = None) -> None:
        self.client = client
        self.openapi = openapi
        self.headers = headers or {}

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: str | bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        data = raw if raw is not None else (json.dumps(body) if body is not None else "")
        response = getattr(self.client, method)(
            path, data=data, content_type="application/json", headers={**self.headers, **(headers or {})}
        )
        self.openapi.validate_response(DjangoOpenAPIRequest(response.wsgi_request), DjangoOpenAPIResponse(response))
        return response

    def get(self, path: str, **kw: Any) -> Any:
        return self.call("get", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Any:
        return self.call("post", path, body, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.call("delete", path, **kw)


@pytest.fixture
def anonymous(openapi) -> Api:
    return Api(Client(), openapi)


@pytest.fixture
def alice(user, openapi) -> Api:
    """Alice's session (CSRF not enforced, as Django's test client does by default)."""
    client = Client()
    client.force_login(user)
    return Api(client, openapi)


@pytest.fixture
def mallory(other_user, openapi) -> Api:
    client = Client()
    client.force_login(other_user)
    return Api(client, openapi)


@pytest.fixture
def csrf_session(user, openapi) -> tuple[Api, str]:
    """Alice's session with CSRF enforced, and the CSRF secret her cookie holds."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    secret = secrets.token_hex(16)  # 32 characters: the form of Django's CSRF cookie secret
    client.cookies[django_settings.CSRF_COOKIE_NAME] = secret
    return Api(client, openapi), secret


def error_of(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["code"]


def start(api: Api, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = api.post("/api/jobs/", body or SIMULATED)
    assert response.status_code == 201, response.content
    return response.json()


# --- the schema -------------------------------------------------------------------------------


def test_schema_is_served_documents_every_error_and_the_docs_page_is_local(anonymous):
    schema = anonymous.client.get("/api/openapi.json").json()
    assert schema["info"]["title"] == "Job progress API"
    assert schema["info"]["version"] == "1"
    assert "not_cancellable" in schema["info"]["description"]
    assert set(schema["paths"]) == {
        "/api/jobs/",
        "/api/jobs/{job_id}/",
        "/api/jobs/{job_id}/cancel/",
        "/api/tokens/",
        "/api/tokens/{prefix}/",
    }
    operations = [op for item in schema["paths"].values() for op in item.values()]
    assert len(operations) == 7
    for op in operations:
        assert {"401", "500"} <= set(op["responses"]), op["operationId"]
    assert schema["paths"]["/api/jobs/{job_id}/cancel/"]["post"]["responses"].keys() == {
        "200",
        "401",
        "403",
        "404",
        "409",
        "500",
    }
    schemes = schema["components"]["securitySchemes"]
    assert {s["type"] for s in schemes.values()} == {"http", "apiKey"}
    assert [s["scheme"] for s in schemes.values() if s["type"] == "http"] == ["bearer"]
    # The Swagger page loads its scripts from this server's static files, never from a CDN.
    docs = anonymous.client.get("/api/docs")
    assert docs.status_code == 200
    page = docs.content.decode()
    assert "/static/ninja/swagger-ui-bundle.js" in page
    assert not re.search(r"(src|href)=\"https?://", page)


def test_the_schema_check_is_not_vacuous(alice, openapi):
    response = alice.get(f"/api/jobs/{uuid.uuid4()}/")
    assert error_of(response) == (404, "not_found")
    response.content = json.dumps({"code": "gone", "message": "x"}).encode()
    with pytest.raises(InvalidData):
        openapi.validate_response(DjangoOpenAPIRequest(response.wsgi_request), DjangoOpenAPIResponse(response))
    job = start(alice)
    response = alice.get(f"/api/jobs/{job['id']}/")
    response.content = json.dumps({**job, "seq": "1"}).encode()
    with pytest.raises(InvalidData):
        openapi.validate_response(DjangoOpenAPIRequest(response.wsgi_request), DjangoOpenAPIResponse(response))


def test_every_application_error_code_has_a_status():
    def family(cls: type[errors.ApplicationError]) -> list[type[errors.ApplicationError]]:
        return [cls, *(c for sub in cls.__subclasses__() for c in family(sub))]

    codes = {cls.code for cls in family(errors.ApplicationError)}
    assert codes <= set(STATUS_BY_CODE)
    assert {STATUS_BY_CODE[c] for c in ("unknown_kind", "invalid_params")} == {400}
    assert (STATUS_BY_CODE["not_found"], STATUS_BY_CODE["not_cancellable"]) == (404, 409)
    assert (STATUS_BY_CODE["rate_limited"], STATUS_BY_CODE["internal"]) == (429, 500)


# --- authentication ---------------------------------------------------------------------------

ENDPOINTS = [
    ("post", "/api/jobs/"),
    ("get", "/api/jobs/"),
    ("get", f"/api/jobs/{uuid.uuid4()}/"),
    ("post", f"/api/jobs/{uuid.uuid4()}/cancel/"),
    ("post", "/api/tokens/"),
    ("get", "/api/tokens/"),
    ("delete", "/api/tokens/abcdefgh/"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_anonymous_requests_are_401(anonymous, method, path):
    response = anonymous.call(method, path, SIMULATED if method == "post" else None)
    assert error_of(response) == (401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")
    # With CSRF enforced too: no session, so nothing for CSRF to protect: 401, not 403.
    strict = Api(Client(enforce_csrf_checks=True), anonymous.openapi)
    assert error_of(strict.call(method, path, SIMULATED if method == "post" else None)) == (401, "not_authenticated")
    assert Job.objects.count() == 0


def test_session_needs_the_csrf_token_for_unsafe_methods(csrf_session):
    api, secret = csrf_session
    refused = api.post("/api/jobs/", SIMULATED)
    assert error_of(refused) == (403, "csrf_failed")
    assert "X-CSRFToken" in refused.json()["message"]
    assert Job.objects.count() == 0
    assert error_of(api.post("/api/tokens/", {"name": "x"})) == (403, "csrf_failed")
    assert ApiToken.objects.count() == 0

    with_token = {"X-CSRFToken": secret}
    job = api.post("/api/jobs/", SIMULATED, headers=with_token)
    assert job.status_code == 201
    job_id = job.json()["id"]
    assert api.get(f"/api/jobs/{job_id}/").status_code == 200  # safe methods need no token
    assert error_of(api.post(f"/api/jobs/{job_id}/cancel/")) == (403, "csrf_failed")
    created = api.post("/api/tokens/", {"name": "x"}, headers=with_token)
    assert created.status_code == 201
    prefix = created.json()["prefix"]
    assert error_of(api.delete(f"/api/tokens/{prefix}/")) == (403, "csrf_failed")
    assert api.delete(f"/api/tokens/{prefix}/", headers=with_token).status_code == 204
    wrong = api.post("/api/jobs/", SIMULATED, headers={"X-CSRFToken": secrets.token_hex(16)})
    assert error_of(wrong) == (403, "csrf_failed")


@pytest.mark.parametrize("path", ["/api/jobs/", "/api/tokens/"])
def test_a_multipart_content_type_without_boundary_is_400_not_500(csrf_session, path):
    # Found by schemathesis (ST102): Django's CSRF check reads request.POST, and the multipart
    # parser raises MultiPartParserError for a missing boundary.
    api, secret = csrf_session
    response = api.client.post(path, data=b"{}", content_type="multipart/form-data", headers={"X-CSRFToken": secret})
    api.openapi.validate_response(DjangoOpenAPIRequest(response.wsgi_request), DjangoOpenAPIResponse(response))
    assert error_of(response) == (400, "invalid_message")
    assert "boundary" in response.json()["message"]
    assert (Job.objects.count(), ApiToken.objects.count()) == (0, 0)


def test_bearer_token_works_without_csrf_and_stops_when_revoked(alice, openapi, user):
    created = alice.post("/api/tokens/", {"name": "ci"})
    assert created.status_code == 201
    raw = created.json()["token"]
    script = Api(Client(enforce_csrf_checks=True), openapi, headers={"Authorization": f"Bearer {raw}"})

    job = start(script)
    assert Job.objects.get(pk=job["id"]).owner == user
    listed = script.get("/api/jobs/")
    assert [j["id"] for j in listed.json()["items"]] == [job["id"]]
    assert ApiToken.objects.get(prefix=created.json()["prefix"]).last_used_at is not None
    # Tokens manage tokens only from a session: a script cannot mint or revoke them.
    assert error_of(script.post("/api/tokens/", {"name": "more"})) == (401, "not_authenticated")
    assert error_of(script.get("/api/tokens/")) == (401, "not_authenticated")

    assert alice.delete(f"/api/tokens/{created.json()['prefix']}/").status_code == 204
    revoked = script.get("/api/jobs/")
    assert error_of(revoked) == (401, "not_authenticated")
    assert "not valid" in revoked.json()["message"]
    for header in (f"Bearer {raw}x", "Bearer garbage", "Bearer ", "Basic YWxpY2U6YWxpY2UtcGFzc3dvcmQtMQ=="):
        bad = Api(Client(), openapi, headers={"Authorization": header})
        assert error_of(bad.get("/api/jobs/")) == (401, "not_authenticated"), header


def test_a_bad_bearer_token_does_not_fall_back_to_the_session(alice, user):
    assert error_of(alice.get("/api/jobs/", headers={"Authorization": "Bearer nope"})) == (401, "not_authenticated")


# --- jobs -------------------------------------------------------------------------------------


def test_start_answers_the_websocket_job_object_and_dispatches_run_job(
    alice, user, broker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = alice.post("/api/jobs/", {"kind": "simulated", "params": {"step": 5, "interval_ms": 100}})
    assert response.status_code == 201
    body = response.json()
    job = Job.objects.get(pk=body["id"])
    assert (job.owner, job.state, job.params) == (user, JobState.PENDING, {"step": 5, "interval_ms": 100})
    assert body == job_snapshot(job)  # the very object the WebSocket frames carry
    assert [(t.name, t.args) for t in broker.queued("progress")] == [("tasks_app.run_job", [body["id"]])]


def test_idempotency_key_answers_the_same_job(alice):
    first = start(alice, {**SIMULATED, "idempotency_key": "k-1"})
    again = start(alice, {**SIMULATED, "idempotency_key": "k-1"})
    assert again["id"] == first["id"]
    other = alice.post("/api/jobs/", {"kind": "simulated", "params": {"step": 7}, "idempotency_key": "k-1"})
    assert error_of(other) == (422, "idempotency_conflict")
    assert "k-1" in other.json()["message"]
    assert Job.objects.count() == 1


BAD_STARTS = [
    pytest.param({"kind": "simulated", "params": {"step": 0}}, None, "invalid_params", {"step"}, id="bad-param"),
    pytest.param(
        {"kind": "simulated", "params": {"step": "x", "zzz": 1}}, None, "invalid_params", {"step", "zzz"}, id="params"
    ),
    pytest.param({"kind": "nope", "params": {}}, None, "unknown_kind", None, id="unknown-kind"),
    pytest.param({"params": {}}, None, "invalid_message", {"kind"}, id="missing-kind"),
    pytest.param({"kind": 5}, None, "invalid_message", {"kind"}, id="kind-not-string"),
    pytest.param({"kind": ""}, None, "invalid_message", {"kind"}, id="kind-empty"),
    pytest.param({"kind": "simulated", "params": [1]}, None, "invalid_message", {"params"}, id="params-not-object"),
    pytest.param({"kind": "simulated", "paramz": {}}, None, "invalid_message", {"paramz"}, id="unknown-field"),
    pytest.param(
        {"kind": "simulated", "idempotency_key": "k" * 65}, None, "invalid_message", {"idempotency_key"}, id="long-key"
    ),
    pytest.param(None, '{"kind": "simulated",', "invalid_json", {"body"}, id="malformed-json"),
    pytest.param(None, b"\x80{}", "invalid_json", {"body"}, id="not-utf8"),
    pytest.param(None, "[1, 2]", "invalid_message", {"body"}, id="not-an-object"),
    pytest.param(None, "", "invalid_message", {"body"}, id="empty-body"),
]


@pytest.mark.parametrize(("body", "raw", "code", "fields"), BAD_STARTS)
def test_bad_input_is_400_with_fields_and_starts_nothing(alice, broker, body, raw, code, fields):
    response = alice.post("/api/jobs/", body, raw=raw)
    assert error_of(response) == (400, code)
    error = response.json()
    assert error["message"]
    if fields is None:
        assert "fields" not in error
    else:
        assert set(error["fields"]) == fields
        assert all(messages and all(isinstance(m, str) for m in messages) for messages in error["fields"].values())
    assert Job.objects.count() == 0
    assert broker.queued("progress") == []


def test_too_many_active_jobs_is_429(alice, settings):
    settings.JOBS_MAX_ACTIVE_PER_USER = 1
    start(alice)
    response = alice.post("/api/jobs/", SIMULATED)
    assert error_of(response) == (429, "rate_limited")
    assert "limit 1" in response.json()["message"]


def test_read_a_job_and_others_jobs_are_404(alice, mallory):
    job = start(alice)
    mine = alice.get(f"/api/jobs/{job['id']}/")
    assert mine.status_code == 200
    assert mine.json() == job_snapshot(Job.objects.get(pk=job["id"]))
    assert alice.get(f"/api/jobs/{job['id'].upper()}/").json()["id"] == job["id"]
    for path in (f"/api/jobs/{job['id']}/", f"/api/jobs/{uuid.uuid4()}/", "/api/jobs/not-a-uuid/"):
        assert error_of(mallory.get(path)) == (404, "not_found"), path
    assert error_of(mallory.post(f"/api/jobs/{job['id']}/cancel/")) == (404, "not_found")
    assert error_of(alice.post("/api/jobs/not-a-uuid/cancel/")) == (404, "not_found")
    assert Job.objects.get(pk=job["id"]).state == JobState.PENDING


def test_cancel_pending_then_final_is_409(alice, memory_layer):
    job = start(alice)
    cancelled = alice.post(f"/api/jobs/{job['id']}/cancel/")
    assert cancelled.status_code == 200
    body = cancelled.json()
    assert (body["state"], body["seq"]) == ("cancelled", job["seq"] + 1)
    assert body["finished_at"] is not None
    assert body == job_snapshot(Job.objects.get(pk=job["id"]))
    again = alice.post(f"/api/jobs/{job['id']}/cancel/")
    assert error_of(again) == (409, "not_cancellable")
    assert "cancelled" in again.json()["message"]


def test_cancel_a_running_job_answers_cancelling(alice, broker, memory_layer):
    job = start(alice)
    services.job_run(job_id=job["id"])
    response = alice.post(f"/api/jobs/{job['id']}/cancel/")
    assert response.status_code == 200
    assert response.json()["state"] == "cancelling"
    assert alice.post(f"/api/jobs/{job['id']}/cancel/").json()["state"] == "cancelling"


def test_list_is_newest_first_and_paginated_by_limit_and_offset(alice, mallory, settings):
    settings.JOBS_MAX_ACTIVE_PER_USER = 100
    created = [start(alice)["id"] for _ in range(25)]
    start(mallory)
    newest_first = created[::-1]

    first = alice.get("/api/jobs/").json()
    assert (first["count"], first["limit"], first["offset"], len(first["items"])) == (25, 20, 0, 20)
    assert [j["id"] for j in first["items"]] == newest_first[:20]
    rest = alice.get("/api/jobs/?offset=20").json()
    assert (rest["count"], [j["id"] for j in rest["items"]]) == (25, newest_first[20:])
    pages = [alice.get(f"/api/jobs/?limit=10&offset={o}").json() for o in (0, 10, 20, 30)]
    assert [len(p["items"]) for p in pages] == [10, 10, 5, 0]
    assert [j["id"] for p in pages for j in p["items"]] == newest_first
    assert alice.get("/api/jobs/?limit=100").json()["count"] == 25
    assert mallory.get("/api/jobs/").json()["count"] == 1

    cases = (
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=x", "limit"),
        ("offset=-1", "offset"),
        ("offset=9223372036854775808", "offset"),
        ("foo=bar", "foo"),
    )
    for query, field in cases:
        response = alice.get(f"/api/jobs/?{query}")
        assert error_of(response) == (400, "invalid_message"), query
        assert set(response.json()["fields"]) == {field}


def test_an_unexpected_error_is_500_internal_logged_without_traceback_in_the_answer(alice, monkeypatch, caplog):
    def broken(**kwargs: Any) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(services, "job_start", broken)  # a fault below the API, not the API itself
    with caplog.at_level(logging.ERROR, logger="tasks_app.api.errors"):
        response = alice.post("/api/jobs/", SIMULATED)
    assert error_of(response) == (500, "internal")
    assert b"secret internals" not in response.content
    assert b"Traceback" not in response.content
    [record] = [r for r in caplog.records if r.name == "tasks_app.api.errors"]
    assert record.exc_info is not None
    assert str(record.exc_info[1]) == "secret internals"


# --- tokens -----------------------------------------------------------------------------------


def test_tokens_are_shown_once_listed_without_secret_and_revoked(alice, mallory, user):
    created = alice.post("/api/tokens/", {"name": "backup script"})
    assert created.status_code == 201
    body = created.json()
    assert set(body) == {"token", "prefix", "name", "created_at"}
    assert body["token"].startswith(body["prefix"])
    assert len(body["token"]) == 43
    assert body["name"] == "backup script"
    stored = ApiToken.objects.get(prefix=body["prefix"])
    assert stored.user == user
    assert stored.key_hash == hashlib.sha256(body["token"].encode()).hexdigest()
    unnamed = alice.post("/api/tokens/")  # the body is optional
    assert (unnamed.status_code, unnamed.json()["name"]) == (201, "")

    listed = alice.get("/api/tokens/")
    assert listed.status_code == 200
    assert [(t["prefix"], t["name"], t["last_used_at"]) for t in listed.json()["items"]] == [
        (unnamed.json()["prefix"], "", None),
        (body["prefix"], "backup script", None),
    ]
    assert listed.json()["count"] == 2
    assert body["token"].encode() not in listed.content
    assert stored.key_hash.encode() not in listed.content
    assert mallory.get("/api/tokens/").json() == {"count": 0, "items": []}

    assert error_of(mallory.delete(f"/api/tokens/{body['prefix']}/")) == (404, "not_found")
    assert error_of(alice.delete("/api/tokens/unknown1/")) == (404, "not_found")
    revoked = alice.delete(f"/api/tokens/{body['prefix']}/")
    assert (revoked.status_code, revoked.content) == (204, b"")
    assert not ApiToken.objects.filter(prefix=body["prefix"]).exists()
    assert error_of(alice.delete(f"/api/tokens/{body['prefix']}/")) == (404, "not_found")

    too_long = alice.post("/api/tokens/", {"name": "n" * 101})
    assert error_of(too_long) == (400, "invalid_params")
    assert set(too_long.json()["fields"]) == {"name"}
    assert error_of(alice.post("/api/tokens/", {"name": 5})) == (400, "invalid_message")


def test_authenticate_finds_by_digest_and_writes_last_used_at_most_once_a_minute(user):
    token, raw = tokens.api_token_create(user=user, name="t")
    assert raw not in (token.key_hash, token.prefix)
    assert tokens.api_token_authenticate(raw) == user
    token.refresh_from_db()
    first_use = token.last_used_at
    assert first_use is not None

    assert tokens.api_token_authenticate(raw) == user
    token.refresh_from_db()
    assert token.last_used_at == first_use  # within the minute: not written again

    ApiToken.objects.filter(pk=token.pk).update(last_used_at=first_use - dt.timedelta(minutes=2))
    assert tokens.api_token_authenticate(raw) == user
    token.refresh_from_db()
    assert token.last_used_at >= first_use

    for bad in ("", raw[:-1], raw + "x", token.key_hash, "x" * 1000):
        assert tokens.api_token_authenticate(bad) is None
    user.is_active = False
    user.save()
    assert tokens.api_token_authenticate(raw) is None


def test_revoke_is_scoped_to_the_user_when_one_is_given(user, other_user):
    token, raw = tokens.api_token_create(user=user)
    with pytest.raises(tokens.ApiTokenNotFound):
        tokens.api_token_revoke(prefix=token.prefix, user=other_user)
    assert tokens.api_token_authenticate(raw) == user
    tokens.api_token_revoke(prefix=token.prefix)
    assert tokens.api_token_authenticate(raw) is None


def test_api_token_command_creates_lists_and_revokes(user, openapi):
    out, err = io.StringIO(), io.StringIO()
    call_command("api_token", "create", "alice", "--name", "nightly export", stdout=out, stderr=err)
    raw = out.getvalue().strip()
    token = ApiToken.objects.get(user=user)
    assert raw.startswith(token.prefix)
    assert token.name == "nightly export"
    assert "shown only this once" in err.getvalue()
    script = Api(Client(), openapi, headers={"Authorization": f"Bearer {raw}"})
    assert script.get("/api/jobs/").status_code == 200

    out = io.StringIO()
    call_command("api_token", "list", "alice", stdout=out)
    [line] = out.getvalue().splitlines()
    prefix, created, last_used, name = line.split("\t")
    assert (prefix, name) == (token.prefix, "nightly export")
    assert dt.datetime.fromisoformat(created) == token.created_at
    assert last_used != "never"
    assert raw not in out.getvalue()

    out = io.StringIO()
    call_command("api_token", "revoke", token.prefix, stdout=out)
    assert f"Revoked API token {token.prefix} of 'alice'" in out.getvalue()
    assert error_of(script.get("/api/jobs/")) == (401, "not_authenticated")

    with pytest.raises(CommandError, match="no user 'nobody'"):
        call_command("api_token", "create", "nobody")
    with pytest.raises(CommandError, match="not found"):
        call_command("api_token", "revoke", token.prefix)
    with pytest.raises(CommandError, match="too long"):
        call_command("api_token", "create", "alice", "--name", "n" * 101)
