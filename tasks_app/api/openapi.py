"""The OpenAPI description of ``POST /api/jobs/``'s body: one variant per registered job kind.

The body is validated at run time by the kind itself (``services.job_start``: ``unknown_kind``
and ``invalid_params`` errors, with checks a schema cannot state, such as "one of your
uploads"). What clients read in ``/api/openapi.json`` is generated here from the same
pydantic models, so a body the schema accepts is one the kind accepts: ``JobStartRequest`` is a
``oneOf`` with an OpenAPI 3.1 ``discriminator`` on ``kind`` (spec section 4.8.25), one
variant ``StartJob_<kind>`` per kind in ``tasks_app.kinds.REGISTRY`` (custom kinds too), whose
``params`` is the kind's ``params_model`` schema (``Params_<kind>``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from pydantic import BaseModel

from tasks_app.kinds.base import JobKind

#: Where ninja puts a model's schema (``ninja/openapi/schema.py`` ``REF_TEMPLATE``).
COMPONENTS_REF: Final = "#/components/schemas/"
#: Name of the body's component (the model ninja generated it from: ``tasks_app.jobobject.JobStartRequest``).
JOB_START_COMPONENT: Final = "JobStartRequest"


def params_component(kind_name: str) -> str:
    """Component name of a kind's parameter schema: ``Params_<kind>``."""
    return f"Params_{kind_name}"


def start_component(kind_name: str) -> str:
    """Component name of a kind's body variant: ``StartJob_<kind>``."""
    return f"StartJob_{kind_name}"


def params_schemas(kind_name: str, model: type[BaseModel]) -> dict[str, dict[str, Any]]:
    """``component name → JSON schema`` of ``model`` and of the models nested in it, their
    names prefixed with the kind's (two kinds may both call theirs ``Params``)."""
    prefix = params_component(kind_name)
    schema = model.model_json_schema(ref_template=COMPONENTS_REF + prefix + "_{model}", mode="validation")
    nested = schema.pop("$defs", {})
    return {prefix: schema} | {f"{prefix}_{name}": definition for name, definition in nested.items()}


def _params_required(model: type[BaseModel]) -> bool:
    return any(field.is_required() for field in model.model_fields.values())


def start_variant(kind: JobKind, common: Mapping[str, Any]) -> dict[str, Any]:
    """The body variant of one kind: ``kind`` fixed to its name, ``params`` its schema, and the
    other fields of the generic body (``common``: property name → schema)."""
    properties: dict[str, Any] = {
        "kind": {"type": "string", "const": kind.name, "description": f"The job kind: {kind.name}."},
        "params": {"$ref": COMPONENTS_REF + params_component(kind.name)},
        **common,
    }
    required = ["kind", "params"] if _params_required(kind.params_model) else ["kind"]
    return {
        "title": f"Start a {kind.name} job",
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def describe_job_start(schema: dict[str, Any], kinds: Mapping[str, JobKind]) -> dict[str, Any]:
    """Replace the generic ``JobStartRequest`` component of the OpenAPI document ``schema`` (as
    ninja built it, a dict) by a ``oneOf`` of one variant per kind of ``kinds``, and add the
    variants' and parameters' components. Returns ``schema`` (changed in place).

    Raises ``KeyError`` when the document has no ``JobStartRequest`` component (the API changed).
    """
    components: dict[str, Any] = schema.setdefault("components", {}).setdefault("schemas", {})
    generic = components[JOB_START_COMPONENT]
    common = {name: value for name, value in generic["properties"].items() if name not in ("kind", "params")}
    mapping: dict[str, str] = {}
    for name in sorted(kinds):
        kind = kinds[name]
        components.update(params_schemas(name, kind.params_model))
        components[start_component(name)] = start_variant(kind, common)
        mapping[name] = COMPONENTS_REF + start_component(name)
    components[JOB_START_COMPONENT] = {
        "title": JOB_START_COMPONENT,
        "description": (
            "Body of POST /api/jobs/: the fields of the WebSocket's job.start frame. "
            "One variant per job kind, chosen by `kind`; `params` are that kind's parameters."
        ),
        "oneOf": [{"$ref": ref} for ref in mapping.values()],
        "discriminator": {"propertyName": "kind", "mapping": mapping},
    }
    return schema
