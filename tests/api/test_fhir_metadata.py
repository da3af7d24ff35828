"""GET /fhir/metadata: a valid CapabilityStatement that says exactly what the app serves.

The expected interactions are derived here from the app's OpenAPI paths (another view of the same
routes), so these tests stay true as search and write routes are added."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from fastapi import FastAPI

from mappings.models import validate
from service import __version__
from service.app import create_app
from service.fhir.search_params import SEARCH_PARAMS, ParamType
from service.settings import Settings

BASE = "http://peerlink.test"
# (method, shape of the path after /fhir/{type}) -> interaction; "{}" is any path parameter
SHAPES = {
    ("get", ()): "search-type",
    ("post", ("_search",)): "search-type",
    ("post", ()): "create",
    ("get", ("{}",)): "read",
    ("put", ("{}",)): "update",
    ("patch", ("{}",)): "patch",
    ("delete", ("{}",)): "delete",
    ("get", ("_history",)): "history-type",
    ("get", ("{}", "_history")): "history-instance",
    ("get", ("{}", "_history", "{}")): "vread",
}
SYSTEM_LEVEL = {"_history", "_search", "metadata"}
# https://hl7.org/fhir/R4/search.html#all: search parameters of every resource (not _count, _include ...)
FHIR_COMMON = {"_id", "_lastUpdated", "_tag", "_profile", "_security", "_source", "_text", "_content", "_list", "_has"}


def make_app() -> FastAPI:
    keys = Path(tempfile.mkdtemp(prefix="peerlink-keys-"))
    return create_app(Settings(database_url="sqlite+aiosqlite:///:memory:", public_url=BASE, keys_dir=keys))


async def _stub() -> None:
    """Never called: routes added to see that the statement follows them."""


async def capabilities(app: FastAPI, **params: str) -> dict[str, Any]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        response = await http.get("/fhir/metadata", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    body: dict[str, Any] = response.json()
    return body


def expected_interactions(app: FastAPI) -> dict[str, set[str]]:
    """Per resource type, the interactions the app's routes offer, read from its OpenAPI paths."""
    expected: dict[str, set[str]] = {t: set() for t in SEARCH_PARAMS}
    for path, operations in app.openapi()["paths"].items():
        segments = path.split("/")[2:] if path.startswith("/fhir/") else []
        if not segments or segments[0] in SYSTEM_LEVEL or segments[0].startswith("$"):
            continue
        head = segments[0]
        shape = tuple("{}" if s.startswith("{") else s for s in segments[1:])
        for method, operation in operations.items():
            interaction = SHAPES.get((method, shape))
            if interaction is None:
                continue
            if head.startswith("{"):
                schema: dict[str, Any] = next(
                    (p.get("schema", {}) for p in operation.get("parameters", []) if f"{{{p['name']}}}" == head), {}
                )
                types = set(schema.get("enum", SEARCH_PARAMS)) & set(SEARCH_PARAMS)
            else:
                types = {head} & set(SEARCH_PARAMS)
            for resource_type in types:
                expected[resource_type].add(interaction)
    return expected


def by_type(statement: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["type"]: r for r in statement["rest"][0]["resource"]}


def interactions(resource: dict[str, Any]) -> set[str]:
    return {i["code"] for i in resource.get("interaction", [])}


@pytest.fixture
def app() -> FastAPI:
    return make_app()


@pytest.fixture
async def statement(app: FastAPI) -> dict[str, Any]:
    return await capabilities(app)


async def test_is_a_valid_capability_statement(statement):
    model = validate(statement)
    assert model.get_resource_type() == "CapabilityStatement"
    assert statement["status"] == "active"
    assert statement["kind"] == "instance"
    assert statement["fhirVersion"] == "4.0.1"
    assert statement["format"] == ["json", "application/fhir+json"]
    assert statement["software"] == {"name": "PeerLink", "version": __version__}
    assert statement["implementation"]["url"] == f"{BASE}/fhir"
    assert statement["implementation"]["description"]
    assert statement["date"].endswith("Z")
    (rest,) = statement["rest"]
    assert rest["mode"] == "server"
    security = rest["security"]["description"]  # served with this deployment's token URL
    assert "SMART" in security and "RS384" in security
    assert rest["security"]["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    (oauth,) = rest["security"]["extension"]
    assert oauth["url"].endswith("/oauth-uris")
    assert oauth["extension"] == [{"url": "token", "valueUri": "http://peerlink.test/auth/token"}]


async def test_lists_exactly_the_served_resource_types(statement):
    # and the partners' Groups of bulk export (service.api.fhir.bulk_capability), and Subscription
    # with its topics (service.api.fhir.subscription_capability)
    assert [r["type"] for r in statement["rest"][0]["resource"]] == [*SEARCH_PARAMS, "Group", "Subscription"]


async def test_interactions_are_those_of_the_routes(app, statement):
    expected = expected_interactions(app)
    resources = by_type(statement)
    for resource_type, wanted in expected.items():
        assert interactions(resources[resource_type]) == wanted, resource_type
    patient = interactions(resources["Patient"])
    assert {"read", "vread", "history-instance", "history-type"} <= patient
    # creating referrals is offered exactly when a write route for ServiceRequest is registered
    assert ("create" in interactions(resources["ServiceRequest"])) == ("create" in expected["ServiceRequest"])
    for resource in resources.values():
        if "vread" in interactions(resource):
            assert resource["versioning"] == "versioned" and resource["readHistory"] is True


async def test_search_params_match_the_search_table(app, statement):
    resources = by_type(statement)
    for resource_type, params in SEARCH_PARAMS.items():
        resource = resources[resource_type]
        if "search-type" not in interactions(resource):
            assert "searchParam" not in resource  # nothing is promised before search is routed
            continue
        listed = {p["name"]: p for p in resource["searchParam"]}
        assert set(listed) == set(params)
        for name, param in params.items():
            assert listed[name]["type"] == param.type.value
            assert listed[name]["documentation"]


async def test_common_search_params_are_those_the_search_routes_declare(app, statement):
    declared = {
        p["name"]
        for path, operations in app.openapi()["paths"].items()
        if path in ("/fhir/{resource_type}", "/fhir/{resource_type}/_search")
        for operation in operations.values()
        for p in operation.get("parameters", [])
        if p.get("in") == "query" and p["name"] in FHIR_COMMON
    }
    listed = {p["name"]: p for p in statement["rest"][0].get("searchParam", [])}
    assert set(listed) == declared
    for name, kind in (("_id", "token"), ("_lastUpdated", "date")):
        if name in listed:
            assert listed[name]["type"] == kind and listed[name]["documentation"]


async def test_follows_routes_as_they_are_added(app):
    """Routes added to the app show up: type-level search everywhere, create for two types named by a
    Literal path parameter, patch on Goal alone, a system-level transaction and a type operation."""
    before = expected_interactions(app)
    if "search-type" not in before["Encounter"]:
        app.add_api_route("/fhir/{resource_type}", _stub, methods=["GET"])

    async def create(resource_type: Literal["ServiceRequest", "Task"]) -> None:
        """Never called."""

    app.add_api_route("/fhir/{resource_type}/$validate-stub", create, methods=["POST"])
    app.add_api_route("/fhir/{resource_type}", create, methods=["POST"])
    app.add_api_route("/fhir/Goal/{resource_id}", _stub, methods=["PATCH"])
    app.add_api_route("/fhir", _stub, methods=["POST"])
    statement = await capabilities(app)
    validate(statement)
    resources = by_type(statement)
    for resource_type, wanted in expected_interactions(app).items():
        assert interactions(resources[resource_type]) == wanted, resource_type
    had = {interaction: {t for t, found in before.items() if interaction in found} for interaction in SHAPES.values()}
    assert {t for t, r in resources.items() if "create" in interactions(r)} == had["create"] | {
        "ServiceRequest",
        "Task",
        "Subscription",  # its own routes (service.api.fhir.subscription)
    }
    assert {t for t, r in resources.items() if "patch" in interactions(r)} == had["patch"] | {"Goal"}
    assert statement["patchFormat"] == ["application/json-patch+json"]
    assert {"code": "transaction"} in statement["rest"][0]["interaction"]
    assert [op["name"] for op in resources["Task"]["operation"]] == ["validate-stub"]
    assert [op["name"] for op in resources["Patient"]["operation"]] == ["export"]  # the bulk export route only
    for resource_type, params in SEARCH_PARAMS.items():
        resource = resources[resource_type]
        assert "search-type" in interactions(resource)
        assert {p["name"] for p in resource["searchParam"]} == set(params)
        references = {f"{resource_type}:{p.name}" for p in params.values() if p.type is ParamType.REFERENCE}
        assert set(resource.get("searchInclude", [])) == references
    assert "Encounter:patient" in resources["Patient"]["searchRevInclude"]
    assert "Task:focus" in resources["ServiceRequest"]["searchRevInclude"]
    assert "DocumentReference:encounter" in resources["Encounter"]["searchRevInclude"]
    assert "Encounter:patient" not in resources["Practitioner"].get("searchRevInclude", [])


async def test_pretty_and_json_formats(app):
    assert (await capabilities(app, _format="json"))["resourceType"] == "CapabilityStatement"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        pretty = await http.get("/fhir/metadata", params={"_pretty": "true", "_format": "application/fhir+json"})
        assert pretty.status_code == 200 and b'\n  "resourceType"' in pretty.content
        # metadata is not tenant data: an unknown program is no obstacle
        other = await http.get("/fhir/metadata", headers={"PeerLink-Program": "no-such-program"})
        assert other.status_code == 200


@pytest.mark.parametrize(
    ("params", "headers"),
    [({"_format": "xml"}, {}), ({"_format": "application/fhir+xml"}, {}), ({}, {"Accept": "application/fhir+xml"})],
)
async def test_xml_is_not_acceptable(app, params, headers):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        response = await http.get("/fhir/metadata", params=params, headers=headers)
    assert response.status_code == 406
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "not-supported"
