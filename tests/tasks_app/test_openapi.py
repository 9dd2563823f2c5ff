"""The OpenAPI description of POST /api/jobs/'s body: one variant per kind, from the kinds' models."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from django.test import Client
from pydantic import BaseModel, Field

from tasks_app.api.openapi import COMPONENTS_REF, JOB_START_COMPONENT
from tasks_app.kinds import REGISTRY, StrictParams, TaskKind


def document() -> dict[str, Any]:
    response = Client().get("/api/openapi.json")
    assert response.status_code == 200
    return response.json()


def body_validator(doc: dict[str, Any]) -> jsonschema.Draft202012Validator:
    """Validates a request body against the document's ``JobStartRequest`` (refs resolved in ``doc``)."""
    schema = {"$ref": COMPONENTS_REF + JOB_START_COMPONENT, "components": doc["components"]}
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def test_the_body_is_a_discriminated_union_of_every_registered_kind():
    doc = document()
    body = doc["components"]["schemas"][JOB_START_COMPONENT]
    assert body["discriminator"]["propertyName"] == "kind"
    assert set(body["discriminator"]["mapping"]) == set(REGISTRY)
    # JOB_KIND_MODULES's kinds, and none a test declared (tests/kinds.py takes them out again).
    assert set(REGISTRY) == {"simulated", "csv_profile", "csv_profile_parallel", "remote", "primes", "primes_split"}
    assert [v["$ref"] for v in body["oneOf"]] == list(body["discriminator"]["mapping"].values())
    post = doc["paths"]["/api/jobs/"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == {"$ref": COMPONENTS_REF + "JobStartRequest"}
    conflict = post["responses"]["422"]["content"]["application/json"]["schema"]
    assert conflict["$ref"].endswith("IdempotencyConflictError")


VALID = [
    {"kind": "simulated"},
    {"kind": "simulated", "params": {"step": 5, "interval_ms": 50, "fail_at": 40}, "idempotency_key": "k"},
    {"kind": "primes", "params": {"limit": 1000}},
    {"kind": "remote", "params": {"service": "demo", "payload": {"duration_s": 1}}},
    {"kind": "csv_profile", "params": {"upload_id": "0b3e4c3e-3b5f-4d63-9f4a-7e4c3e3b5f4d", "delimiter": ";"}},
]
INVALID = [
    {"kind": "nope"},  # not a registered kind
    {"kind": "simulated", "params": {"step": 0}},  # below the model's minimum
    {"kind": "simulated", "params": {"step": "5"}},  # no coercion
    {"kind": "simulated", "params": {"speed": 5}},  # unknown parameter (extra="forbid")
    {"kind": "simulated", "extra": 1},  # unknown body field
    {"kind": "primes", "params": {"limit": 20_000_001}},
    {"kind": "remote", "params": {"service": "not-configured"}},  # enum of REMOTE_SERVICES
    {"kind": "remote", "params": {}},  # service is required
    {"kind": "csv_profile"},  # params are required: upload_id is
    {"kind": "csv_profile", "params": {"upload_id": "x", "delimiter": ":"}},
]


@pytest.mark.parametrize("body", VALID)
def test_bodies_the_kinds_accept_are_valid_in_the_schema(body):
    body_validator(document()).validate(body)
    model = REGISTRY[body["kind"]].params_model
    if body["kind"] != "csv_profile":  # its upload must exist: a check no schema states
        model.model_validate(body.get("params", {}))


@pytest.mark.parametrize("body", INVALID)
def test_bodies_the_kinds_refuse_are_invalid_in_the_schema(body):
    assert not body_validator(document()).is_valid(body)


class Window(BaseModel):
    start: int = Field(ge=0)
    end: int = Field(ge=0)


class ReportParams(StrictParams):
    window: Window
    title: str = Field("report", max_length=20)


def test_a_custom_kind_and_its_nested_models_are_described(monkeypatch):
    kind = TaskKind("report", ReportParams, "tasks_app.kind.report", "jobs")
    monkeypatch.setitem(REGISTRY, "report", kind)
    doc = document()
    schemas = doc["components"]["schemas"]
    assert schemas["Params_report"]["properties"]["window"] == {"$ref": COMPONENTS_REF + "Params_report_Window"}
    assert schemas["StartJob_report"]["required"] == ["kind", "params"]
    validator = body_validator(doc)
    validator.validate({"kind": "report", "params": {"window": {"start": 1, "end": 2}}})
    assert not validator.is_valid({"kind": "report", "params": {"window": {"start": -1, "end": 2}}})
