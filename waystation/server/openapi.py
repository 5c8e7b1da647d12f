"""The OpenAPI document of protocol v1, served at ``/openapi.json`` and shown at ``/docs``.

The routes parse raw bytes (server/body.py) and answer with orjson, so FastAPI can infer
nothing but paths and query parameters. This module builds the rest from one table
(server/openapi_operations.py: per operation, its summary, who may call it, its request
body and every status it answers with its body) and the wire shapes (core/protocol.py,
core/wire_schemas.py), whose JSON Schemas pydantic derives. FastAPI's automatic 422
answers are dropped: the server answers malformed input with 400 VALIDATION_ERROR
(server/errors.py). The deployment's collections are named in the document (enums of
``collection``), since the schema is the server's to choose.

tests/server/test_openapi_conformance.py holds the server to the document with
schemathesis: every status, body and content type it sends must be the documented one.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode
from starlette.routing import BaseRoute

from waystation import __version__
from waystation.core.schema import Schema
from waystation.server.openapi_fields import add_collections
from waystation.server.openapi_operations import (
    AUTH_ERRORS,
    ERROR_EXAMPLES,
    HEADERS,
    INTRO,
    OPERATIONS,
    SHAPES,
    TAGS,
    Answer,
    Auth,
    Operation,
)

REF = "#/components/schemas/{model}"
JSON = "application/json"


class _Untitled(GenerateJsonSchema):
    """pydantic's JSON Schema without a generated title on every key ("Op Id"): the key's
    name says it, and Swagger UI shows the titles in place of the types."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


class UndocumentedOperation(RuntimeError):
    """A route the table does not describe (or a described one without a route)."""


TITLE = "Waystation"
SUMMARY = "Offline-first sync for health services (protocol v1)"


def install_openapi(app: FastAPI) -> None:
    """Serve this module's document as ``app.openapi()`` (built once, on first use)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema: Schema = app.state.services.store.schema
            app.openapi_schema = build_openapi(schema, app.routes)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override


def build_openapi(schema: Schema, routes: Sequence[BaseRoute]) -> dict[str, Any]:
    """The document of the server with these routes over this deployment's schema (pure:
    tests build it without a server). Raises UndocumentedOperation when a route and the
    table of operations differ."""
    doc = get_openapi(
        title=TITLE,
        version=__version__,
        summary=SUMMARY,
        description=INTRO,
        routes=routes,
        tags=TAGS,
    )
    components = _components()
    add_collections(components, schema, REF)
    collections = sorted(schema.collections)
    seen: set[tuple[str, str]] = set()
    for path, methods in doc["paths"].items():
        for method, inferred in methods.items():
            operation = OPERATIONS.get((method, path))
            if operation is None:
                raise UndocumentedOperation(
                    f"{method.upper()} {path} is not in server/openapi_operations.py"
                )
            seen.add((method, path))
            methods[method] = _operation(operation, inferred, collections, components)
    missing = set(OPERATIONS) - seen
    if missing:
        raise UndocumentedOperation(f"described but not routed: {sorted(missing)}")
    doc["components"] = {
        "schemas": components,
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "a user token (POST /v1/auth/token) or a device token "
                "(POST /v1/devices, POST /v1/auth/refresh)",
            }
        },
        "headers": HEADERS,
        "examples": _error_examples(),
    }
    return doc


def _components() -> dict[str, Any]:
    """JSON Schemas of every request body and answer, named after their Python types."""
    inputs: list[tuple[str, JsonSchemaMode, TypeAdapter[Any]]] = [
        (shape.__name__, mode, TypeAdapter(shape)) for shape, mode in SHAPES
    ]
    _, found = TypeAdapter.json_schemas(inputs, ref_template=REF, schema_generator=_Untitled)
    components: dict[str, Any] = found["$defs"]
    return components


def _operation(
    op: Operation, inferred: dict[str, Any], collections: list[str], components: dict[str, Any]
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "tags": [op.tag],
        "summary": op.summary,
        "description": f"{op.description.strip()}\n\n**Who may call it:** {op.auth.value}",
        "operationId": op.operation_id,
        "security": [] if op.auth is Auth.NONE else [{"bearer": []}],
    }
    parameters = [_parameter(p, op.parameters, collections) for p in inferred.get("parameters", [])]
    parameters += [dict(p) for p in op.headers]
    if parameters:
        out["parameters"] = parameters
    if op.body is not None:
        media: dict[str, Any] = {"schema": {"$ref": REF.format(model=op.body.__name__)}}
        if op.body_examples:
            media["examples"] = op.body_examples
        out["requestBody"] = {"required": True, "content": {JSON: media}}
    answers = dict(op.answers)
    if op.auth is not Auth.NONE:
        answers.setdefault(401, AUTH_ERRORS)
    out["responses"] = {
        str(status): _response(answer, components) for status, answer in sorted(answers.items())
    }
    return out


def _parameter(
    inferred: dict[str, Any], described: dict[str, str], collections: list[str]
) -> dict[str, Any]:
    """A parameter FastAPI found in the route's signature, with its description; optional
    ones lose the ``null`` branch FastAPI gives them (absent is how a query says none)."""
    param = copy.deepcopy(inferred)
    name = param["name"]
    schema = param["schema"]
    branches = schema.get("anyOf")
    if branches and {"type": "null"} in branches and len(branches) == 2:
        (schema,) = [b for b in branches if b != {"type": "null"}]
    schema = {k: v for k, v in schema.items() if k != "title"}
    if name == "collection":
        schema["enum"] = collections
    param["schema"] = schema
    if name in described:
        param["description"] = described[name]
    return param


def _response(answer: Answer, components: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"description": answer.describe()}
    if answer.headers:
        out["headers"] = {name: {"$ref": f"#/components/headers/{name}"} for name in answer.headers}
    content: dict[str, Any] = {}
    if answer.codes:
        content[JSON] = {
            "schema": {"$ref": REF.format(model=_error_component(answer.codes, components))},
            "examples": {code: {"$ref": f"#/components/examples/{code}"} for code in answer.codes},
        }
    elif answer.body is not None:
        media: dict[str, Any] = {"schema": {"$ref": REF.format(model=answer.body.__name__)}}
        if answer.examples:
            media["examples"] = answer.examples
        content[JSON] = media
    content.update(answer.other_media)
    if content:
        out["content"] = content
    return out


def _error_component(codes: tuple[str, ...], components: dict[str, Any]) -> str:
    """The name of the error shape (``ErrorAnswer``) with ``code`` narrowed to ``codes``,
    added to ``components`` on first use."""
    name = "Error-" + "-".join(codes)
    if name not in components:
        schema = copy.deepcopy(components["ErrorAnswer"])
        error = copy.deepcopy(components["ErrorBody"])
        error["properties"]["code"]["enum"] = list(codes)
        error["title"] = f"{' or '.join(codes)} error"
        schema["properties"]["error"] = error
        schema["title"] = name
        components[name] = schema
    return name


def _error_examples() -> dict[str, Any]:
    return {
        code: {"summary": code, "value": {"error": body}} for code, body in ERROR_EXAMPLES.items()
    }
