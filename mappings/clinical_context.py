"""A referral's clinical context: the resources a clinic sends beside its ServiceRequest (the
requester, the reason's Condition, screening Observations, a Consent ...), kept as received.

Pure: which types PeerLink keeps, the key a clinic's resource is known by (its id, else its first
identifier, else its fullUrl), the id PeerLink serves it under (uuid5 of the program, the referral,
the type and that key: a resend maps to the same id) and the rewrite of its references to what
PeerLink serves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

from .ids import fhir_id

KIND = "clinical-context"
KEPT_TYPES = (
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "Condition",
    "Goal",
    "Consent",
    "Coverage",
    "Observation",
    "QuestionnaireResponse",
    "DocumentReference",
    "RelatedPerson",
    "Immunization",
)
REASON_TYPES = ("Condition", "Observation")
"""What a ServiceRequest.reasonReference may name (R4: Condition, Observation, DiagnosticReport,
DocumentReference); those sent as its reason are linked as reasonReference, the rest as supportingInfo."""
PATIENT_ELEMENTS = ("subject", "patient", "for", "beneficiary")
"""Where a kept resource names the person it is about (its patient compartment)."""
_SERVER_META = ("versionId", "lastUpdated", "source")


def clinic_key(resource: Mapping[str, Any], full_url: str | None) -> str:
    """What the clinic knows the resource by: its id, else its first identifier, else its fullUrl,
    else a digest of its content (the same resource sent again has the same key)."""
    if isinstance(resource.get("id"), str) and resource["id"]:
        return f"id:{resource['id']}"
    for ident in resource.get("identifier") or []:
        if isinstance(ident, dict) and ident.get("system") and ident.get("value"):
            return f"identifier:{ident['system']}|{ident['value']}"
    if full_url:
        return f"url:{full_url}"
    return "sha256:" + hashlib.sha256(orjson.dumps(resource, option=orjson.OPT_SORT_KEYS)).hexdigest()


def served_id(program_system: str, referral_id: str, resource_type: str, key: str) -> str:
    """The id PeerLink serves a kept resource under (deterministic: a resend finds the same one)."""
    return fhir_id(program_system, KIND, f"{referral_id}|{resource_type}|{key}")


def aliases(resource: Mapping[str, Any], full_url: str | None) -> list[str]:
    """The reference strings that can name a sent resource: its fullUrl, Type/id and the tail of an
    absolute fullUrl."""
    names: list[str] = []
    if full_url:
        names.append(full_url)
        parts = full_url.rstrip("/").split("/")
        if len(parts) >= 2 and not full_url.startswith("urn:"):
            names.append(f"{parts[-2]}/{parts[-1]}")
    if isinstance(resource.get("id"), str) and resource.get("resourceType"):
        names.append(f"{resource['resourceType']}/{resource['id']}")
    return list(dict.fromkeys(names))


def rewrite(node: Any, served: Mapping[str, str]) -> Any:
    """``node`` with every Reference.reference that names a sent resource replaced by what PeerLink
    serves (``served``: reference as sent -> Type/id); other references are kept as sent."""
    if isinstance(node, list):
        return [rewrite(item, served) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: rewrite(value, served) for key, value in node.items()}
    reference = node.get("reference")
    if isinstance(reference, str) and reference in served:
        out["reference"] = served[reference]
    return out


def kept(resource: Mapping[str, Any], resource_id: str, served: Mapping[str, str]) -> dict[str, Any]:
    """The resource as PeerLink keeps it: its id ours, its references rewritten, the sender's server
    bookkeeping (meta.versionId, lastUpdated, source) left out; everything else as received."""
    body = rewrite(dict(resource), served)
    body["id"] = resource_id
    meta = {k: v for k, v in (body.pop("meta", None) or {}).items() if k not in _SERVER_META}
    head: dict[str, Any] = {"resourceType": resource["resourceType"], "id": resource_id}
    if meta:
        head["meta"] = meta
    return {**head, **{k: v for k, v in body.items() if k not in head}}


def patient_references(resource: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(element, reference) for each place the resource names the person it is about."""
    found = []
    for element in PATIENT_ELEMENTS:
        value = resource.get(element)
        reference = value.get("reference") if isinstance(value, dict) else None
        if isinstance(reference, str) and reference:
            found.append((element, reference))
    return found
