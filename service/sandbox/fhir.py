"""The sandbox's FHIR REST interactions: one dispatcher over a table of interactions (read, vread,
search, create with If-None-Exist, update with If-Match and update-as-create, delete, transaction),
errors raised as the gateway's error classes and turned into OperationOutcomes in one place.

A request arrives as a ``FhirCall`` (``fhir_call``) so a transaction entry (``fhir_bundle``) and an HTTP
request travel the same code.
"""

from __future__ import annotations

from collections.abc import Callable
from email.utils import format_datetime
from functools import partial
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson

from mappings.models import FhirValidationError, validate
from service.auth.scopes import Interaction
from service.domain.errors import (
    BadRequest,
    Forbidden,
    InvalidResource,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    UnsupportedMediaType,
)

from .auth import Caller
from .capability import supported_search_params
from .config import RESOURCE_TYPES, SandboxConfig
from .fhir_bundle import Plan, at, plan_entry, response_entry
from .fhir_call import JSON_TYPES, MAX_BODY_BYTES, FhirCall, Result, etag_version, prefer, references
from .search import included, parse_query, reference_key, run
from .store import Store, Version

STATUS_CODES = {
    "Encounter": frozenset(
        {
            *("planned", "arrived", "triaged", "in-progress", "onleave"),
            *("finished", "cancelled", "entered-in-error", "unknown"),
        }
    ),
    "DocumentReference": frozenset({"current", "superseded", "entered-in-error"}),
    "CareTeam": frozenset({"proposed", "active", "suspended", "inactive", "entered-in-error"}),
    "ServiceRequest": frozenset({"draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"}),
    "Task": frozenset(
        {
            *("draft", "requested", "received", "accepted", "rejected", "ready", "cancelled"),
            *("in-progress", "on-hold", "failed", "completed", "entered-in-error"),
        }
    ),
}
"""FHIR R4 status value sets (required bindings) of the types served here that have a status."""
_INTERACTION_SCOPE = {
    "read": Interaction.READ,
    "vread": Interaction.READ,
    "search-type": Interaction.SEARCH,
    "create": Interaction.CREATE,
    "update": Interaction.UPDATE,
    "delete": Interaction.DELETE,
}


class FhirServer:
    """The FHIR interactions over one store, as a config allows them."""

    def __init__(self, config: SandboxConfig, store: Callable[[], Store]) -> None:
        self._config = config
        self._store = store
        self._table = config.interactions()
        self._params = supported_search_params(config)

    @property
    def store(self) -> Store:
        return self._store()

    # --- dispatch ------------------------------------------------------------------------------------------
    def handle(self, call: FhirCall, caller: Caller, base: str, *, open_endpoint: bool = False) -> Result:
        """One interaction on a resource type (metadata, discovery and transactions are the caller's)."""
        parts, method = call.parts, call.method
        resource_type = parts[0]
        if resource_type not in RESOURCE_TYPES:
            raise NotFound(f"this server does not serve {resource_type[:40]} resources")
        if open_endpoint and method != "GET":
            raise MethodNotAllowed("the open endpoint is read-only")
        if len(parts) == 1 and method == "GET":
            return self.search(resource_type, call, caller, base)
        if len(parts) == 1 and method == "POST":
            return self.create(resource_type, call, caller, base)
        if len(parts) == 2 and parts[1] == "_search" and method == "POST":
            return self.search(resource_type, call, caller, base)
        if len(parts) == 2 and method == "GET":
            return self.read(resource_type, parts[1], caller)
        if len(parts) == 2 and method == "PUT":
            return self.update(resource_type, parts[1], call, caller, base)
        if len(parts) == 2 and method == "DELETE":
            return self.delete(resource_type, parts[1], caller)
        if len(parts) == 4 and parts[2] == "_history" and method == "GET":
            if not parts[3].isdigit():
                raise NotFound("a version id is a number")
            return self.vread(resource_type, parts[1], int(parts[3]), caller)
        if len(parts) in (3, 4) and parts[2] == "_history":
            raise MethodNotAllowed("history is not supported by this server")
        if len(parts) <= 2:
            raise MethodNotAllowed(f"{method} is not supported here")
        raise NotFound("no such FHIR path")

    def _allow(self, resource_type: str, interaction: str, caller: Caller) -> None:
        if interaction not in self._table[resource_type]:
            raise MethodNotAllowed(f"{resource_type} {interaction} is not supported by this EHR")
        if not caller.permissions.allows(resource_type, _INTERACTION_SCOPE[interaction]):
            raise Forbidden(f"the access token's scopes do not allow {interaction} on {resource_type}")

    # --- reads ---------------------------------------------------------------------------------------------
    def read(self, resource_type: str, resource_id: str, caller: Caller) -> Result:
        self._allow(resource_type, "read", caller)
        version = self.store.read(resource_type, resource_id)
        return Result(200, version.resource, self._version_headers(version), version)

    def vread(self, resource_type: str, resource_id: str, version_id: int, caller: Caller) -> Result:
        self._allow(resource_type, "vread", caller)
        version = self.store.vread(resource_type, resource_id, version_id)
        return Result(200, version.resource, self._version_headers(version), version)

    def search(self, resource_type: str, call: FhirCall, caller: Caller, base: str) -> Result:
        self._allow(resource_type, "search-type", caller)
        pairs = list(call.query)
        if call.method == "POST":
            media = (call.header("content-type") or "").split(";")[0].strip().lower()
            if media != "application/x-www-form-urlencoded":
                raise UnsupportedMediaType("POST _search takes application/x-www-form-urlencoded parameters")
            pairs += parse_qsl(call.body.decode("utf-8", "replace"), keep_blank_values=True)
        lenient = prefer(call, "handling") == "lenient"
        query = parse_query(
            resource_type, pairs, self._params[resource_type], lenient=lenient, supported_includes=self._params
        )
        matches = run(self.store, query)
        page = [] if query.summary_count else matches[query.offset : query.offset + query.count]
        readable = [
            v
            for v in included(self.store, page, query.includes)
            if caller.permissions.allows(v.resource_type, Interaction.READ)
        ]

        def link(offset: int) -> str:
            paging = [] if query.summary_count else [("_count", str(query.count)), ("_offset", str(offset))]
            return f"{base}/{resource_type}?{urlencode(query.echo + paging)}"

        links = [{"relation": "self", "url": link(query.offset)}]
        if not query.summary_count and query.offset + query.count < len(matches) and query.count > 0:
            links.append({"relation": "next", "url": link(query.offset + query.count)})
        if query.offset > 0 and not query.summary_count:
            links.append({"relation": "previous", "url": link(max(0, query.offset - query.count))})
        bundle: dict[str, Any] = {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(matches),
            "link": links,
            "entry": [self._entry(v, base, "match") for v in page]
            + [self._entry(v, base, "include") for v in readable],
        }
        if not bundle["entry"]:
            del bundle["entry"]
        return Result(200, bundle)

    @staticmethod
    def _entry(version: Version, base: str, mode: str) -> dict[str, Any]:
        return {"fullUrl": f"{base}/{version.reference}", "resource": version.resource, "search": {"mode": mode}}

    # --- writes --------------------------------------------------------------------------------------------
    def parse_body(self, resource_type: str | None, call: FhirCall) -> dict[str, Any]:
        if len(call.body) > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"the body is larger than {MAX_BODY_BYTES} bytes")
        media = (call.header("content-type") or "").split(";")[0].strip().lower()
        if media not in JSON_TYPES:
            raise UnsupportedMediaType("send application/fhir+json")
        try:
            document = orjson.loads(call.body)
        except orjson.JSONDecodeError:
            raise BadRequest("the body is not valid JSON") from None
        if not isinstance(document, dict):
            raise BadRequest("the body must be a JSON object (a FHIR resource)")
        if resource_type is not None and document.get("resourceType") != resource_type:
            raise BadRequest(f"the body's resourceType must be {resource_type}")
        return document

    @staticmethod
    def validate(resource: dict[str, Any]) -> None:
        """The resource's structure (fhir.resources) and its status code (a required binding those
        models leave unchecked)."""
        try:
            validate(resource)
        except FhirValidationError as error:
            problems = "; ".join(f"{where}: {why}" for where, why in error.problems[:5])
            raise InvalidResource(f"the {error.resource_type} is not valid: {problems}") from None
        resource_type = str(resource["resourceType"])
        codes = STATUS_CODES.get(resource_type)
        if codes is not None and "status" in resource and resource["status"] not in codes:
            raise InvalidResource(f"{resource_type}.status must be one of {', '.join(sorted(codes))}")

    def check_references(self, resource: dict[str, Any], base: str) -> None:
        """Literal references to the types served here must point at live resources (422 otherwise)."""
        for ref in references(resource):
            text: str = ref["reference"]
            if text.startswith("#"):
                continue
            if text.startswith("urn:uuid:") or text.startswith("urn:oid:"):
                raise InvalidResource(f"the reference {text[:60]} resolves to nothing (only in a transaction)")
            if "://" in text and not text.startswith(base + "/"):
                continue  # another server's resource
            key = reference_key(text)
            if key is None:
                continue
            target_type, target_id = key.split("/")
            if not self.store.exists(target_type, target_id):
                raise InvalidResource(f"the reference {key[:100]} points at no resource on this server")

    def _conditional_matches(self, resource_type: str, condition: str) -> list[Version]:
        pairs = parse_qsl(condition.lstrip("?"), keep_blank_values=True)
        if not pairs:
            raise BadRequest("If-None-Exist needs search parameters, e.g. identifier=system|value")
        query = parse_query(resource_type, pairs, self._params[resource_type])
        return run(self.store, query)

    def create(self, resource_type: str, call: FhirCall, caller: Caller, base: str) -> Result:
        self._allow(resource_type, "create", caller)
        resource = self.parse_body(resource_type, call)
        condition = call.header("if-none-exist")
        if condition and self._config.conditional_create:
            found = self._conditional_matches(resource_type, condition)
            if len(found) > 1:
                raise PreconditionFailed("If-None-Exist matches more than one resource")
            if found:
                return self._written(found[0], 200, base, call)
        self.validate(resource)
        self.check_references(resource, base)
        version = self.store.create(resource)
        return self._written(version, 201, base, call)

    def update(self, resource_type: str, resource_id: str, call: FhirCall, caller: Caller, base: str) -> Result:
        self._allow(resource_type, "update", caller)
        resource = self.parse_body(resource_type, call)
        if resource.get("id") != resource_id:
            raise BadRequest("the resource's id must be the id in the URL")
        self.check_if_match(resource_type, resource_id, call.header("if-match"))
        self.validate(resource)
        self.check_references(resource, base)
        version, created = self.store.update(resource_type, resource_id, resource)
        return self._written(version, 201 if created else 200, base, call)

    def check_if_match(self, resource_type: str, resource_id: str, if_match: str | None) -> None:
        if not if_match:
            return
        wanted = etag_version(if_match)
        current = self.store.current(resource_type, resource_id)
        if current is None or current.resource is None:
            raise PreconditionFailed(f"If-Match: {resource_type}/{resource_id[:64]} does not exist")
        if current.version_id != wanted:
            raise PreconditionFailed(f"If-Match: the current version is {current.version_id}, not {wanted}")

    def delete(self, resource_type: str, resource_id: str, caller: Caller) -> Result:
        self._allow(resource_type, "delete", caller)
        if self.store.current(resource_type, resource_id) is None:
            raise NotFound(f"{resource_type}/{resource_id[:64]} is not known")
        version = self.store.delete(resource_type, resource_id)
        headers = {"ETag": version.etag} if version is not None else {}
        return Result(204, None, headers)

    @staticmethod
    def _version_headers(version: Version) -> dict[str, str]:
        return {"ETag": version.etag, "Last-Modified": format_datetime(version.last_updated, usegmt=True)}

    def _written(self, version: Version, status: int, base: str, call: FhirCall) -> Result:
        headers = {
            **self._version_headers(version),
            "Location": f"{base}/{version.reference}/_history/{version.version_id}",
        }
        document = None if prefer(call, "return") == "minimal" else version.resource
        return Result(status, document, headers, version)

    # --- transaction -----------------------------------------------------------------------------------------
    def transaction(self, call: FhirCall, caller: Caller, base: str) -> Result:
        if not self._config.transaction:
            raise MethodNotAllowed("this EHR does not process transaction Bundles")
        bundle = self.parse_body("Bundle", call)
        if bundle.get("type") != "transaction":
            raise BadRequest("POST [base] takes a Bundle of type transaction (batch is not supported)")
        entries = bundle.get("entry") or []
        if not isinstance(entries, list):
            raise BadRequest("Bundle.entry must be a list")
        plans = [plan_entry(i, entry, partial(self._allow, caller=caller)) for i, entry in enumerate(entries)]
        results: dict[int, Result] = {}
        with self.store.atomic():
            resolved: dict[str, str] = {}
            for plan in plans:  # ids first, so entries can point at each other in any order
                if plan.method == "POST":
                    existing = self._entry_condition(plan)
                    plan.target_id = existing.id if existing is not None else self.store.new_id()
                    plan.existing = existing
                    if plan.full_url:
                        resolved[plan.full_url] = f"{plan.resource_type}/{plan.target_id}"
            for plan in plans:
                if plan.resource is not None:
                    for ref in references(plan.resource):
                        ref["reference"] = resolved.get(ref["reference"], ref["reference"])
                    at(plan.index, partial(self.validate, plan.resource))
            order = {"DELETE": 0, "POST": 1, "PUT": 2, "GET": 3}
            for plan in sorted(plans, key=lambda p: order[p.method]):
                results[plan.index] = at(plan.index, partial(self._apply, plan, caller, base))
            for plan in plans:
                if plan.resource is not None and plan.existing is None:
                    at(plan.index, partial(self.check_references, plan.resource, base))
        response = {
            "resourceType": "Bundle",
            "type": "transaction-response",
            "entry": [response_entry(results[plan.index], base) for plan in plans],
        }
        return Result(200, response)

    def _entry_condition(self, plan: Plan) -> Version | None:
        if not plan.if_none_exist or not self._config.conditional_create:
            return None
        found = at(plan.index, lambda: self._conditional_matches(plan.resource_type, plan.if_none_exist or ""))
        if len(found) > 1:
            raise PreconditionFailed(f"Bundle.entry[{plan.index}]: ifNoneExist matches more than one resource")
        return found[0] if found else None

    def _apply(self, plan: Plan, caller: Caller, base: str) -> Result:
        store = self.store
        if plan.method == "DELETE":
            assert plan.target_id is not None
            if store.current(plan.resource_type, plan.target_id) is None:
                raise NotFound(f"{plan.resource_type}/{plan.target_id[:64]} is not known")
            store.delete(plan.resource_type, plan.target_id)
            return Result(204)
        if plan.method == "POST":
            assert plan.resource is not None
            assert plan.target_id is not None
            if plan.existing is not None:
                return Result(200, plan.existing.resource, version=plan.existing)
            version = store.create(plan.resource, resource_id=plan.target_id)
            return Result(201, version.resource, version=version)
        if plan.method == "PUT":
            assert plan.resource is not None
            assert plan.target_id is not None
            self.check_if_match(plan.resource_type, plan.target_id, plan.if_match)
            version, created = store.update(plan.resource_type, plan.target_id, plan.resource)
            return Result(201 if created else 200, version.resource, version=version)
        if plan.target_id is not None:
            return self.read(plan.resource_type, plan.target_id, caller)
        call = FhirCall("GET", (plan.resource_type,), plan.query)
        return self.search(plan.resource_type, call, caller, base)
