"""service.api.contract: which error answers an operation declares, from what it takes in."""

from typing import Any

from service.api import contract

VALIDATION_422 = {
    "description": "Validation Error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}},
}


def header(name: str) -> dict[str, Any]:
    return {"in": "header", "name": name, "schema": {"type": "string"}}


def test_a_public_operation_without_inputs_declares_no_error():
    assert contract.error_statuses("/healthz", "get", {}) == set()


def test_a_peer_read_by_id_needs_a_token_and_may_find_nothing():
    operation = {"parameters": [{"in": "path", "name": "record_id"}, header("PeerLink-Program")]}
    assert contract.error_statuses("/peer/v1/goals/{record_id}", "get", operation) == {
        400, 401, 403, 404, 405, 422, 503,
    }  # fmt: skip


def test_a_peer_change_adds_the_body_the_version_and_conflicts():
    operation = {"parameters": [header("If-Match")], "requestBody": {}}
    statuses = contract.error_statuses("/peer/v1/goals/{record_id}", "patch", operation)
    assert {400, 409, 412, 413, 415, 422} <= statuses
    assert 406 not in statuses


def test_fhir_format_negotiation_is_a_406():
    operation = {"parameters": [{"in": "query", "name": "_format"}]}
    assert 406 in contract.error_statuses("/fhir/{resource_type}", "get", operation)
    assert contract.error_statuses("/fhir/metadata", "get", operation) == {400, 406, 422}


def test_the_token_endpoint_keeps_its_own_error_format():
    assert contract.error_statuses("/auth/token", "post", {"requestBody": {}}) == {413, 503}


def test_complete_replaces_the_default_422_and_speaks_fhir_under_fhir():
    schema: dict[str, Any] = {
        "paths": {
            "/fhir/{resource_type}": {
                "get": {
                    "parameters": [{"in": "path", "name": "resource_type"}],
                    "responses": {"200": {"content": {"application/json": {"schema": {}}}}, "422": VALIDATION_422},
                }
            },
            "/peer/v1/goals": {"get": {"parameters": [], "responses": {"200": {}, "422": VALIDATION_422}}},
        },
        "components": {"schemas": {"HTTPValidationError": {}, "ValidationError": {}}},
    }
    contract.complete(schema)
    fhir = schema["paths"]["/fhir/{resource_type}"]["get"]["responses"]
    assert list(fhir["200"]["content"]) == ["application/fhir+json"]
    assert fhir["422"]["content"]["application/fhir+json"]["schema"] == {
        "$ref": "#/components/schemas/OperationOutcome"
    }
    assert fhir["404"]["content"]["application/fhir+json"]["schema"]["$ref"].endswith("/OperationOutcome")
    peer = schema["paths"]["/peer/v1/goals"]["get"]["responses"]
    assert peer["401"]["content"]["application/problem+json"]["schema"]["$ref"].endswith("/Problem")
    assert "422" not in peer  # no inputs, so nothing to validate
    assert set(schema["components"]["schemas"]) == {"Problem", "OperationOutcome"}
