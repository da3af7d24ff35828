"""The sandbox's CapabilityStatement, derived from its config: the interactions its personality
offers, the search parameters left after the feature switches, transaction and conditional create
as switched, and the SMART oauth-uris extension naming its token endpoint."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mappings.models import FHIR_VERSION
from service import __version__
from service.fhir.search_params import ParamType, SearchParam

from .config import RESOURCE_TYPES, SandboxConfig
from .search import SEARCH_PARAMS
from .store import instant

OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
SMART_SERVICE = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
            "code": "SMART-on-FHIR",
        }
    ]
}
_ORDER = ("read", "vread", "update", "patch", "delete", "history-instance", "history-type", "create", "search-type")
OPEN_INTERACTIONS = frozenset({"read", "vread", "search-type"})


def supported_search_params(config: SandboxConfig) -> dict[str, dict[str, SearchParam]]:
    return {
        resource_type: {n: p for n, p in params.items() if config.search_param_supported(resource_type, n)}
        for resource_type, params in SEARCH_PARAMS.items()
    }


def capability_statement(
    config: SandboxConfig, fhir_base: str, token_url: str | None, created: datetime, *, open_endpoint: bool = False
) -> dict[str, Any]:
    """``token_url`` None: no security block (the oracle-like open endpoint)."""
    params = supported_search_params(config)
    table = config.interactions()
    resources: list[dict[str, Any]] = []
    for resource_type in RESOURCE_TYPES:
        offered = table[resource_type] & OPEN_INTERACTIONS if open_endpoint else table[resource_type]
        writes = "create" in offered
        entry: dict[str, Any] = {
            "type": resource_type,
            "interaction": [{"code": code} for code in _ORDER if code in offered],
            "versioning": "versioned",
            "readHistory": False,
            "updateCreate": "update" in offered,
            "conditionalCreate": writes and config.conditional_create,
            "conditionalRead": "not-supported",
            "conditionalUpdate": False,
            "conditionalDelete": "not-supported",
        }
        includes = [f"{resource_type}:{n}" for n, p in params[resource_type].items() if p.type is ParamType.REFERENCE]
        if includes:
            entry["searchInclude"] = includes
        entry["searchParam"] = [
            {"name": p.name, "type": p.type.value, **({"documentation": p.documentation} if p.documentation else {})}
            for p in params[resource_type].values()
        ]
        resources.append(entry)
    rest: dict[str, Any] = {"mode": "server", "resource": resources}
    if token_url is not None:
        rest["security"] = {
            "extension": [{"url": OAUTH_URIS, "extension": [{"url": "token", "valueUri": token_url}]}],
            "service": [SMART_SERVICE],
            "description": "SMART Backend Services: client_credentials with a private_key_jwt assertion "
            f"({' or '.join(config.assertion_algs)}); system/ scopes per type and interaction.",
        }
    if config.transaction and not open_endpoint:
        rest["interaction"] = [{"code": "transaction"}]
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": instant(created),
        "publisher": "PeerLink sandbox",
        "kind": "instance",
        "software": {"name": f"PeerLink sandbox EHR ({config.personality.value})", "version": __version__},
        "implementation": {"description": "A simulated hospital EHR with synthetic data", "url": fhir_base},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "rest": [rest],
    }
