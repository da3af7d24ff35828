"""GET /fhir/metadata: the CapabilityStatement, generated from what is really served.

Nothing here is hand-maintained. The interactions come from walking the app's routes under /fhir
(a route's shape and method say which FHIR interaction it is, its first segment which resource
types: a literal type name, or a path parameter that takes every type of SEARCH_PARAMS unless it
is annotated with a Literal or an Enum), the search parameters come from SEARCH_PARAMS, and
_include/_revinclude from its reference parameters and the targets the FHIR models allow for the
referenced elements. The statement is built and validated once per set of routes; each response
only fills in the base URL the client used.
"""

from __future__ import annotations

import enum
import sys
import typing
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute

from mappings.models import FHIR_VERSION, FhirValidationError, model_class, validate
from mappings.profiles import load_overlay
from service import __version__
from service.fhir.search_params import SEARCH_PARAMS, ParamType, SearchParam

from .bulk_capability import with_bulk_data
from .responses import PrettyDep, base_url, fhir_response
from .subscription_capability import with_subscriptions

router = APIRouter(tags=["FHIR"])

PREFIX = "/fhir"
FORMATS = ["json", "application/fhir+json"]
PATCH_FORMATS = ["application/json-patch+json"]
SECURITY = (
    "SMART on FHIR Backend Services: OAuth 2.0 client_credentials with a JWT client assertion signed "
    "RS384 or ES384 (see /.well-known/smart-configuration). Every interaction but this statement needs "
    "a bearer token whose SMART scopes (v1 system/Type.read|write, v2 system/Type.cruds) cover it. A "
    "client acting for an outside organisation sees only what consents and its own referrals open to "
    "it; the token's client decides the peer program (a different PeerLink-Program header is a 403)."
)
SMART_SERVICE = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
            "code": "SMART-on-FHIR",
            "display": "SMART-on-FHIR",
        }
    ]
}
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"


def security_block(token_url: str) -> dict[str, Any]:
    """rest.security with the SMART oauth-uris extension naming the token endpoint."""
    return {
        "extension": [{"url": OAUTH_URIS, "extension": [{"url": "token", "valueUri": token_url}]}],
        "cors": False,
        "service": [SMART_SERVICE],
        "description": SECURITY,
    }


# the order interactions are listed in (the order of the FHIR specification's value set)
TYPE_INTERACTIONS = (
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
)
SYSTEM_INTERACTIONS = ("transaction", "batch", "search-system", "history-system")
_INSTANCE_METHODS = (("GET", "read"), ("PUT", "update"), ("PATCH", "patch"), ("DELETE", "delete"))
COMMON_SEARCH_PARAMS = {
    "_id": "token",
    "_lastUpdated": "date",
    "_tag": "token",
    "_profile": "uri",
    "_security": "token",
    "_source": "uri",
    "_text": "string",
    "_content": "string",
    "_list": "special",
    "_has": "special",
    "_type": "token",
}
"""The search parameters FHIR defines for every resource (https://hl7.org/fhir/R4/search.html#all),
as opposed to result parameters such as _count or _include."""


@dataclass
class Served:
    """What the routes under /fhir offer: interactions per resource type, system level, operations."""

    by_type: dict[str, set[str]] = field(default_factory=lambda: {t: set() for t in SEARCH_PARAMS})
    system: set[str] = field(default_factory=set)
    type_operations: dict[str, set[str]] = field(default_factory=lambda: {t: set() for t in SEARCH_PARAMS})
    system_operations: set[str] = field(default_factory=set)
    common_search: dict[str, str] = field(default_factory=dict)
    """FHIR common search parameters (_id, _lastUpdated ...) a type-level search route declares."""


def fhir_routes(app: FastAPI) -> Iterator[tuple[str, frozenset[str], APIRoute]]:
    """(full path, methods, route) of every API route of the app under /fhir/ (a route glued to the
    prefix by a path parameter, such as a hidden alias of POST [base]/, is left out)."""
    try:
        from fastapi.routing import iter_route_contexts  # FastAPI with lazily included routers
    except ImportError:  # pragma: no cover - older FastAPI copies included routes into app.routes
        for route in app.routes:
            if isinstance(route, APIRoute):
                yield route.path, frozenset(route.methods or ()), route
        return
    for context in iter_route_contexts(app.routes):
        original = context.original_route
        path = context.path
        if isinstance(original, APIRoute) and path and (path == PREFIX or path.startswith(PREFIX + "/")):
            yield path, frozenset(context.methods or original.methods or ()), original


def _is_param(segment: str) -> bool:
    return segment.startswith("{") and segment.endswith("}")


def _param_name(segment: str) -> str:
    return segment[1:-1].split(":", 1)[0]


def _allowed_values(route: APIRoute, name: str) -> list[str] | None:
    """The values a path parameter is restricted to by its annotation (Literal or Enum), if any."""
    for param in route.dependant.path_params:
        if param.name != name and param.alias != name:
            continue
        annotation = param.field_info.annotation
        if typing.get_origin(annotation) is typing.Literal:
            return [str(v) for v in typing.get_args(annotation)]
        if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
            return [str(member.value) for member in annotation]
    return None


def _types_of(segment: str, route: APIRoute) -> list[str]:
    if _is_param(segment):
        allowed = _allowed_values(route, _param_name(segment))
        return list(SEARCH_PARAMS) if allowed is None else [t for t in allowed if t in SEARCH_PARAMS]
    return [segment] if segment in SEARCH_PARAMS else []


def _declared_common_params(route: APIRoute) -> dict[str, str]:
    """Common search parameters a search route declares: as query parameters of its signature, or
    in the OpenAPI parameters it documents (routes that read the query string themselves)."""
    declared: dict[str, str] = {}
    for param in route.dependant.query_params:
        declared[param.alias] = param.field_info.description or ""
    for extra in (route.openapi_extra or {}).get("parameters", []):
        if isinstance(extra, dict) and extra.get("in") == "query" and isinstance(extra.get("name"), str):
            declared[extra["name"]] = str(extra.get("description") or "")
    return {name: text for name, text in declared.items() if name in COMMON_SEARCH_PARAMS}


def _route_text(route: APIRoute) -> str:
    return " ".join(str(v) for v in (route.name, route.operation_id, route.summary) if v).lower()


def served(routes: Iterable[tuple[str, frozenset[str], APIRoute]]) -> Served:
    """Classify routes by their shape: [type], [type, id], [type, id, _history, vid], [$op] ..."""
    found = Served()
    for path, methods, route in routes:
        segments = [s for s in path[len(PREFIX) :].split("/") if s]
        if not segments:
            if "POST" in methods:
                found.system.add("transaction")
                if "batch" in _route_text(route):
                    found.system.add("batch")
            continue
        head, shape = segments[0], ["id" if _is_param(s) else s for s in segments[1:]]
        if head == "_history":
            if not shape and "GET" in methods:
                found.system.add("history-system")
            continue
        if head == "_search":
            if not shape and "POST" in methods:
                found.system.add("search-system")
            continue
        if head.startswith("$"):
            if not shape:
                found.system_operations.add(head[1:])
            continue
        for resource_type in _types_of(head, route):
            interactions = found.by_type[resource_type]
            if not shape:
                interactions.update(i for m, i in (("GET", "search-type"), ("POST", "create")) if m in methods)
                if "GET" in methods:
                    found.common_search.update(_declared_common_params(route))
            elif shape == ["_search"] and "POST" in methods:
                interactions.add("search-type")
                found.common_search.update(_declared_common_params(route))
            elif shape == ["_history"] and "GET" in methods:
                interactions.add("history-type")
            elif shape == ["id"]:
                interactions.update(i for m, i in _INSTANCE_METHODS if m in methods)
            elif shape == ["id", "_history"] and "GET" in methods:
                interactions.add("history-instance")
            elif shape == ["id", "_history", "id"] and "GET" in methods:
                interactions.add("vread")
            elif shape[-1].startswith("$") and (len(shape) == 1 or shape[:-1] == ["id"]):
                found.type_operations[resource_type].add(shape[-1][1:])
    return found


# --- reference targets, for _include / _revinclude ------------------------------------------------


def _element_class(owner: type[Any], annotation: Any) -> type[Any] | None:
    """The model class of a backbone element field (fhir.resources annotates them with ABC stand-ins
    that name the class, which lives in the module of the resource that owns it)."""
    while typing.get_origin(annotation) is not None:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if not args:
            return None
        annotation = args[0]
    dotted = getattr(annotation, "_model_klass", None)
    if isinstance(dotted, str):
        module_name, _, class_name = dotted.rpartition(".")
        module = sys.modules.get(module_name) or sys.modules.get(owner.__module__)
        found = getattr(module, class_name, None) if module else None
        return found if isinstance(found, type) else None
    return annotation if isinstance(annotation, type) and hasattr(annotation, "model_fields") else None


def _field(cls: type[Any], name: str) -> Any:
    fields: dict[str, Any] = getattr(cls, "model_fields", {})
    if name in fields:
        return fields[name]
    return next((f for f in fields.values() if f.alias == name), None)


def reference_targets(resource_type: str, param: SearchParam) -> list[str]:
    """The served resource types a reference parameter can point at (all of them when the model
    allows any resource or says nothing)."""
    if param.name == "patient":  # FHIR's patient parameters are the subject restricted to Patient
        return ["Patient"]
    targets: set[str] = set()
    for path in param.paths:
        cls: type[Any] | None = model_class(resource_type)
        parts = path.split(".")
        allowed: list[str] | None = None
        for i, part in enumerate(parts):
            info = _field(cls, part) if cls is not None else None
            if info is None:
                break
            if i == len(parts) - 1:
                extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
                names = extra.get("enum_reference_types")
                allowed = [str(n) for n in names] if isinstance(names, list) else None
            else:
                cls = _element_class(cls, info.annotation) if cls is not None else None
        if allowed is None or "Resource" in allowed:
            return list(SEARCH_PARAMS)
        targets.update(t for t in allowed if t in SEARCH_PARAMS)
    return sorted(targets)


def _reference_params() -> list[tuple[str, SearchParam, list[str]]]:
    return [
        (resource_type, param, reference_targets(resource_type, param))
        for resource_type, params in SEARCH_PARAMS.items()
        for param in params.values()
        if param.type is ParamType.REFERENCE
    ]


# --- the statement -------------------------------------------------------------------------------

SERVED_PROFILES = load_overlay("generic").profiles
"""The profiles the served resources claim: the generic overlay's (US Core, SDOHCC), as mapped."""


def _documentation(resource_type: str, param: SearchParam) -> str:
    where = ", ".join(f"{resource_type}.{path}" for path in param.paths)
    return f"{param.documentation} ({where})" if param.documentation else f"{param.type.value} search on {where}"


def capability_statement(found: Served, *, base: str, date: datetime) -> dict[str, Any]:
    references = _reference_params()
    any_patch = False
    resources: list[dict[str, Any]] = []
    for resource_type, params in SEARCH_PARAMS.items():
        interactions = [i for i in TYPE_INTERACTIONS if i in found.by_type[resource_type]]
        any_patch = any_patch or "patch" in interactions
        entry: dict[str, Any] = {
            "type": resource_type,
            "profile": f"http://hl7.org/fhir/StructureDefinition/{resource_type}",
        }
        if claimed := SERVED_PROFILES.get(resource_type):  # what the served resources claim in meta.profile
            entry["supportedProfile"] = claimed
        if interactions:
            entry["interaction"] = [{"code": code} for code in interactions]
        if "read" in interactions or "vread" in interactions:
            entry["versioning"] = "versioned"
            entry["readHistory"] = "vread" in interactions
        if "search-type" in interactions:
            includes = [f"{resource_type}:{p.name}" for t, p, _ in references if t == resource_type]
            revincludes = sorted(f"{t}:{p.name}" for t, p, targets in references if resource_type in targets)
            if includes:
                entry["searchInclude"] = includes
            if revincludes:
                entry["searchRevInclude"] = revincludes
            entry["searchParam"] = [
                {"name": p.name, "type": p.type.value, "documentation": _documentation(resource_type, p)}
                for p in params.values()
            ]
        operations = sorted(found.type_operations[resource_type])
        if operations:
            entry["operation"] = [
                {"name": op, "definition": f"http://hl7.org/fhir/OperationDefinition/{resource_type}-{op}"}
                for op in operations
            ]
        resources.append(entry)
    rest: dict[str, Any] = {
        "mode": "server",
        "documentation": "PeerLink's FHIR R4 API: the peer program's records as FHIR resources.",
        "security": security_block("http://localhost/auth/token"),
        "resource": resources,
    }
    if found.common_search:
        rest["searchParam"] = [
            {
                "name": name,
                "type": kind,
                "documentation": found.common_search[name] or f"{name}, defined by FHIR for every resource",
            }
            for name, kind in COMMON_SEARCH_PARAMS.items()
            if name in found.common_search
        ]
    system = [i for i in SYSTEM_INTERACTIONS if i in found.system]
    if system:
        rest["interaction"] = [{"code": code} for code in system]
    if found.system_operations:
        rest["operation"] = [
            {"name": op, "definition": f"http://hl7.org/fhir/OperationDefinition/Resource-{op}"}
            for op in sorted(found.system_operations)
        ]
    statement: dict[str, Any] = {
        "resourceType": "CapabilityStatement",
        "name": "PeerLinkCapabilityStatement",
        "title": "PeerLink FHIR server",
        "status": "active",
        "experimental": False,
        "date": date.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "publisher": "PeerLink",
        "description": "What this PeerLink server really serves, generated from its registered routes.",
        "kind": "instance",
        "software": {"name": "PeerLink", "version": __version__},
        "implementation": {"description": "PeerLink FHIR gateway", "url": base},
        "fhirVersion": FHIR_VERSION,
        "format": FORMATS,
        "rest": [rest],
    }
    if any_patch:
        statement["patchFormat"] = PATCH_FORMATS
    return with_bulk_data(statement)  # Bulk Data canonicals and the partners' Groups (bulk_capability)


def cached_statement(app: FastAPI) -> dict[str, Any]:
    """Built and validated once per set of routes: the app's state keeps it, keyed by the app's
    route list (including a router or adding a route changes it; walking the routes again on every
    request would cost more than the rest of the response)."""
    key = tuple(id(route) for route in app.routes)
    cache: tuple[tuple[int, ...], dict[str, Any]] | None = getattr(app.state, "capability_statement", None)
    if cache is not None and cache[0] == key:
        return cache[1]
    statement = capability_statement(served(fhir_routes(app)), base="http://localhost/fhir", date=datetime.now(UTC))
    statement = with_subscriptions(statement, app.state.settings.base_url)  # the topics (subscription_capability)
    try:
        validate(statement)
    except FhirValidationError as exc:  # a bug here, never the client's doing
        raise RuntimeError(f"generated CapabilityStatement is not valid: {exc}") from exc
    app.state.capability_statement = (key, statement)
    return statement


@router.get("/metadata", summary="CapabilityStatement", operation_id="fhir_capabilities")
async def capabilities(request: Request, pretty: PrettyDep) -> Response:
    statement = cached_statement(request.app)
    token_url = f"{request.app.state.settings.base_url}/auth/token"
    rest = [{**statement["rest"][0], "security": security_block(token_url)}]
    body = {**statement, "rest": rest, "implementation": {**statement["implementation"], "url": base_url(request)}}
    return fhir_response(orjson.dumps(body), pretty=pretty)
