"""The error half of the OpenAPI document, in one place.

Which statuses an operation can answer follows from what it takes in, as the generated document
already says: a bearer token (every route but the public ones) -> 401/403 (503 when the refusal
cannot be audited), a PeerLink-Program header -> 403/404, a body -> 400/413/415/422, If-Match ->
400/412, a path id -> 404 (405 when an id holding "/" lands on another route), ``_format`` -> 406;
what handlers refuse on their own (conflicts, rule violations) is the small per-family table below.
Bodies are RFC 7807 problem+json, and under /fhir an OperationOutcome as application/fhir+json.
Statuses a route declares itself are left as declared.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from service.api.problems import FHIR_JSON, FHIR_PREFIX, PROBLEM_JSON, title

PROBLEM = "Problem"
OUTCOME = "OperationOutcome"

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": PROBLEM,
    "description": "RFC 7807 problem details; `errors` lists where a request failed validation (never its values).",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "request_id": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
}
OUTCOME_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": OUTCOME,
    "description": "FHIR R4 OperationOutcome: why a /fhir request was refused.",
    "required": ["resourceType", "issue"],
    "properties": {
        "resourceType": {"const": OUTCOME},
        "issue": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["severity", "code"],
                "properties": {
                    "severity": {"enum": ["fatal", "error", "warning", "information"]},
                    "code": {"type": "string"},
                    "diagnostics": {"type": "string"},
                    "expression": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}
FHIR_RESOURCE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["resourceType"],
    "properties": {"resourceType": {"type": "string"}},
    "description": "A FHIR R4 resource (a Bundle for searches, histories and transactions)",
}

# Families by path prefix: whether a token is needed, and what their handlers refuse by themselves
# beyond what their inputs imply (conflicts, rule violations, bad search parameters, unknown names).
_WRITES = frozenset({"post", "put", "patch", "delete"})
_PUBLIC = ("/fhir/metadata", "/.well-known/", "/auth/", "/healthz", "/readyz", "/metrics")
_HANDLER_STATUSES: dict[str, dict[str, set[int]]] = {
    "/peer/v1": {"read": {400}, "write": {409, 422}},  # bad cursor or range; illegal transitions, rules
    FHIR_PREFIX: {"read": {400}, "write": {400, 409, 412, 422}},  # bad search parameters; inbound refusals
    "/admin/v1": {"read": set(), "write": {400, 404, 409}},  # unknown connection or client, duplicates
    "/readyz": {"read": {503}, "write": set()},  # the database does not answer
}

# Routes that answer bad input in their own format and declare it on the route (RFC 6749 errors);
# only the body limit and an unwritable audit record come back as problem documents.
_OWN_ERRORS: dict[str, set[int]] = {"/auth/token": {413, 503}}


def _inputs(operation: dict[str, Any]) -> dict[str, set[str]]:
    """Where (path, query, header, body) -> the names the operation takes there."""
    found: dict[str, set[str]] = {}
    for parameter in operation.get("parameters", []):
        found.setdefault(parameter["in"], set()).add(parameter["name"])
    if "requestBody" in operation:
        found["body"] = set()
    return found


def error_statuses(path: str, method: str, operation: dict[str, Any]) -> set[int]:
    """Every error status ``method`` on ``path`` can answer, from what the operation takes in."""
    if path in _OWN_ERRORS:
        return _OWN_ERRORS[path]
    inputs = _inputs(operation)
    statuses: set[int] = set()
    if inputs:
        statuses.add(422)  # a parameter or body that does not validate
    if not path.startswith(_PUBLIC):
        statuses |= {401, 403, 503}  # no or a bad token; scopes or data boundary; refusal not auditable
    if "PeerLink-Program" in inputs.get("header", ()):
        statuses |= {403, 404}  # another program's code; an unknown one
    if "If-Match" in inputs.get("header", ()):
        statuses |= {400, 412}  # not an ETag of ours; a stale version
    if "_format" in inputs.get("query", ()):
        statuses.add(406)  # a format other than JSON (also from Accept)
    if "path" in inputs:
        statuses |= {404, 405}  # no such record; an id holding "/" lands on another route
    if "body" in inputs:
        statuses |= {400, 413, 415, 422}  # not JSON; over the size limit; another media type; invalid
    for prefix, table in _HANDLER_STATUSES.items():
        if path.startswith(prefix):
            statuses |= table["write" if method in _WRITES else "read"]
    return statuses


def _error_response(status: int, fhir: bool) -> dict[str, Any]:
    media_type, name = (FHIR_JSON, OUTCOME) if fhir else (PROBLEM_JSON, PROBLEM)
    return {
        "description": title(status),
        "content": {media_type: {"schema": {"$ref": f"#/components/schemas/{name}"}}},
    }


def _fhir_success(response: dict[str, Any]) -> None:
    """FHIR answers are application/fhir+json whatever the route's response class says."""
    content = response.get("content") or {}
    schema = next((c.get("schema") for c in content.values() if c.get("schema")), None)
    response["content"] = {FHIR_JSON: {"schema": schema or FHIR_RESOURCE_SCHEMA}}


def _complete(path: str, method: str, operation: dict[str, Any]) -> None:
    fhir = path == FHIR_PREFIX or path.startswith(FHIR_PREFIX + "/")
    answers: dict[str, Any] = operation.setdefault("responses", {})
    if fhir:
        for status, response in answers.items():
            if status.startswith("2"):
                _fhir_success(response)
    generated_422 = (answers.get("422") or {}).get("content", {}).get("application/json", {}).get("schema")
    if generated_422 == {"$ref": "#/components/schemas/HTTPValidationError"}:
        del answers["422"]  # FastAPI's default; validation errors are problem documents here
    for code in sorted(error_statuses(path, method, operation)):
        answers.setdefault(str(code), _error_response(code, fhir))


def complete(schema: dict[str, Any]) -> dict[str, Any]:
    """Declare every operation's error answers in a generated OpenAPI document (in place)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components[PROBLEM] = PROBLEM_SCHEMA
    components[OUTCOME] = OUTCOME_SCHEMA
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            _complete(path, method, operation)
    for name in ("HTTPValidationError", "ValidationError"):  # referenced by FastAPI's default 422 only
        components.pop(name, None)
    return schema


def install(app: FastAPI) -> None:
    """``app.openapi()`` answers the completed document; FastAPI still builds (and rebuilds, when
    routes are added) the generated one."""
    generate = app.openapi
    done: list[int] = []  # id of the last document completed

    def openapi() -> dict[str, Any]:
        schema = generate()
        if done != [id(schema)]:
            done[:] = [id(schema)]
            complete(schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
