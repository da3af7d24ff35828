"""The HTTP writes of one delivery: each resource as ``PUT [type]/[our deterministic id]`` where the
EHR accepts updates of the type (update-as-create), else as a conditional create (``If-None-Exist:
identifier=...``), else not at all; everything in one transaction Bundle when the EHR takes them.
Content the EHR holds already, unchanged, is not sent again. An EHR that refuses the Bundle as such
(``refusal.refuses_bundles``: 403, 405, 501, or "not supported") gets the same writes one by one, and
the ``Route`` says so, so that the connection's next batches do not try a Bundle first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from .answers import BundleRefused, Permanent, Retryable, check, created_id, id_in_location, json_of
from .capabilities import Capabilities
from .outgoing import Delivered, Outgoing, identifier_query, rewritten, unsent
from .smart_client import SmartClient, TokenFailure

FHIR_JSON = {"Content-Type": "application/fhir+json"}


@dataclass
class Route:
    """How one delivery goes: in a transaction Bundle (``bundles``) or as single writes; ``refused`` is
    the EHR's refusal of a Bundle met on the way (the writes then went one by one)."""

    bundles: bool
    refused: BundleRefused | None = None


async def send(
    client: SmartClient, outgoing: list[Outgoing], known: dict[str, tuple[str, str]], route: Route | bool
) -> Delivered:
    """Write what the EHR lacks or holds in another version; returns what was written. When the EHR
    refuses a write that left out resources it should already hold (it may have lost them: a restore,
    a reset sandbox), everything is sent once more before the refusal counts."""
    way = route if isinstance(route, Route) else Route(route)
    try:
        return await _send(client, outgoing, known, way)
    except Permanent:
        if len(unsent(outgoing, known)) == len(outgoing):  # nothing was skipped
            raise
        return await _send(client, outgoing, {}, way)


async def capabilities_of(client: SmartClient) -> Capabilities:
    try:
        return Capabilities.of(await client.capabilities())
    except httpx.HTTPStatusError as error:
        check(error.response)
        raise Retryable("the CapabilityStatement could not be read") from None
    except (httpx.TransportError, ValueError) as error:
        raise Retryable(f"the CapabilityStatement could not be read: {type(error).__name__}") from None


def plan(
    capabilities: Capabilities, outgoing: list[Outgoing], known: dict[str, tuple[str, str]]
) -> list[tuple[Outgoing, str]]:
    """The writes to make, each with its method: a resource the EHR takes no write of is left out (a
    dependency) or refused (the change itself); what it holds unchanged is skipped."""
    todo: list[tuple[Outgoing, str]] = []
    for item in outgoing:
        method = capabilities.method(item.resource_type)
        if method is None or (method == "POST" and identifier_query(item.resource) is None):
            if item.primary:
                raise Permanent(f"the EHR accepts no writes of {item.resource_type}")
            continue
        if known.get(item.reference, ("", ""))[1] == item.content_hash:
            continue
        todo.append((item, method))
    return todo


async def _send(
    client: SmartClient, outgoing: list[Outgoing], known: dict[str, tuple[str, str]], route: Route
) -> Delivered:
    capabilities = await capabilities_of(client)
    mapping = {ref: f"{ref.split('/')[0]}/{ehr_id}" for ref, (ehr_id, _) in known.items()}
    todo = plan(capabilities, outgoing, known)
    delivered = Delivered()
    if not todo:
        return delivered
    try:
        if route.bundles and capabilities.transaction and len(todo) > 1:
            try:
                await _transaction(client, todo, mapping, delivered)
                return delivered
            except BundleRefused as refusal:  # the same writes, one by one
                route.bundles, route.refused = False, refusal
        for item, method in todo:
            await _single(client, item, method, mapping, delivered)
    except TokenFailure as error:
        raise Retryable(str(error), token=True) from None
    except httpx.TimeoutException as error:
        raise Retryable(f"timeout: {type(error).__name__}") from None
    except httpx.TransportError as error:
        raise Retryable(f"connection failed: {type(error).__name__}") from None
    return delivered


async def _single(
    client: SmartClient, item: Outgoing, method: str, mapping: dict[str, str], delivered: Delivered
) -> None:
    resource_type, our_id = item.resource_type, item.resource_id
    body = rewritten(item, mapping)
    if method == "PUT":
        response = await client.request(
            "PUT", f"{resource_type}/{our_id}", content=orjson.dumps(body), headers=FHIR_JSON
        )
        check(response)
        ehr_id = our_id
    else:
        query = identifier_query(item.resource)
        assert query is not None
        create = for_create(body)
        headers = {**FHIR_JSON, "If-None-Exist": query}
        response = await client.request("POST", resource_type, content=orjson.dumps(create), headers=headers)
        check(response)
        ehr_id = created_id(response, resource_type)
    mapping[item.reference] = f"{resource_type}/{ehr_id}"
    delivered.add(item, ehr_id)


def for_create(body: dict[str, Any]) -> dict[str, Any]:
    """A resource as a create sends it: no id, no meta of ours, but its security labels (42 CFR Part 2
    labels and their refrain obligation must travel with the data, whichever way it is written)."""
    created = {k: v for k, v in body.items() if k not in ("id", "meta")}
    security = (body.get("meta") or {}).get("security")
    if not security:
        return created
    return {"resourceType": created.pop("resourceType"), "meta": {"security": security}, **created}


def transaction_bundle(base: str, todo: list[tuple[Outgoing, str]], mapping: dict[str, str]) -> dict[str, Any]:
    """The transaction Bundle of the writes; what it creates is referenced by its fullUrl."""
    local = dict(mapping)
    for item, method in todo:
        if method == "POST":
            local[item.reference] = f"urn:uuid:{item.resource_id}"
    entries = []
    for item, method in todo:
        resource_type, our_id = item.resource_type, item.resource_id
        body = rewritten(item, local)
        request: dict[str, Any]
        if method == "PUT":
            request = {"method": "PUT", "url": f"{resource_type}/{our_id}"}
            full_url = f"{base}/{resource_type}/{our_id}"
        else:
            body = for_create(body)
            request = {"method": "POST", "url": resource_type, "ifNoneExist": identifier_query(item.resource)}
            full_url = f"urn:uuid:{our_id}"
        entries.append({"fullUrl": full_url, "resource": body, "request": request})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


async def _transaction(
    client: SmartClient, todo: list[tuple[Outgoing, str]], mapping: dict[str, str], delivered: Delivered
) -> None:
    bundle = transaction_bundle(client.base, todo, mapping)
    response = await client.request("POST", "", content=orjson.dumps(bundle), headers=FHIR_JSON)
    check(response, bundle=True)
    try:
        answered = json_of(response).get("entry") or []
    except (ValueError, AttributeError):
        raise Retryable("the EHR's transaction response is not valid JSON") from None
    if len(answered) != len(todo):
        raise Retryable("the EHR's transaction response does not answer every entry")
    for (item, method), entry in zip(todo, answered, strict=True):
        resource_type = item.resource_type
        location = (entry.get("response") or {}).get("location") or ""
        found = id_in_location(location, resource_type)
        ehr_id = item.resource_id if method == "PUT" or found is None else found
        mapping[item.reference] = f"{resource_type}/{ehr_id}"
        delivered.add(item, ehr_id)
