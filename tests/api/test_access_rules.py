"""Every /fhir and /peer route is guarded: it has an access rule and its handler asks for the client."""

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from service.api.access import RULES, current_access
from service.api.fhir.metadata import fhir_routes
from service.app import create_app
from service.settings import Settings

PUBLIC = {"fhir_capabilities"}


def _routes(app: FastAPI) -> list[tuple[str, APIRoute]]:
    """(full path, route) of every API route, routers included lazily or not."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # pragma: no cover - older FastAPI
        return [(r.path, r) for r in app.routes if isinstance(r, APIRoute)]
    return [
        (c.path or "", c.original_route)
        for c in iter_route_contexts(app.routes)
        if isinstance(c.original_route, APIRoute)
    ]


def _calls(dependant: Dependant, wanted: Any) -> bool:
    return any(d.call is wanted or _calls(d, wanted) for d in dependant.dependencies)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    return create_app(Settings(database_url="sqlite+aiosqlite:///:memory:", keys_dir=tmp_path_factory.mktemp("k")))


def test_every_fhir_and_peer_route_has_a_rule_and_checks_the_client(app):
    guarded = [route for path, route in _routes(app) if path.startswith(("/fhir", "/peer/"))]
    assert len(guarded) > 40
    assert {id(route) for _, _, route in fhir_routes(app)} <= {id(route) for route in guarded}
    for route in guarded:
        if route.operation_id in PUBLIC:
            continue
        assert route.operation_id in RULES, f"{route.path} has no access rule"
        assert _calls(route.dependant, current_access), f"{route.path} does not check the client"


def test_the_rules_name_only_existing_routes(app):
    operation_ids = {r.operation_id for _, r in _routes(app)}
    assert set(RULES) <= operation_ids
