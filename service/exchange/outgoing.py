"""What goes to an EHR, as data: a resource on its way (reference, content hash, the references it
makes), its references rewritten to the EHR's ids, and what one delivery wrote. Pure: no I/O."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from service.auth.boundary import compartment_patient

PRIMARY_TYPES: dict[str, tuple[str, ...]] = {
    "encounter": ("Encounter",),
    "note": ("DocumentReference",),
    "care-team": ("CareTeam",),
    "assessment": ("QuestionnaireResponse", "Observation"),
}
"""Per outbox kind, the types of the change's own resources (the record's other resources stay home)."""
DEPENDENCY_TYPES = ("Organization", "Practitioner", "PractitionerRole", "Patient", "Encounter")
ORDER = {
    t: i
    for i, t in enumerate((*DEPENDENCY_TYPES, "DocumentReference", "CareTeam", "QuestionnaireResponse", "Observation"))
}
"""What goes first: what others reference (an assessment's Observations are derivedFrom its
QuestionnaireResponse; a panel goes after the Observations it lists, see ``Outgoing.rank``)."""
_REFERENCE_IN_JSON = re.compile(rb'"reference"\s*:\s*"([A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64})"')
"""A relative reference anywhere in a resource's JSON (inside a string, quotes are escaped: no match)."""


def references_in(document: bytes) -> tuple[str, ...]:
    """The relative references (``Type/id``) anywhere in a resource's JSON, in document order."""
    return tuple(match.decode() for match in _REFERENCE_IN_JSON.findall(document))


def is_dependency(reference: str) -> bool:
    """A reference to a resource that goes ahead of what references it (Patient, Encounter, ...)."""
    return reference.split("/")[0] in DEPENDENCY_TYPES


def from_projection(body: bytes) -> dict[str, Any]:
    """A stored resource as it is sent: our version and timestamp are ours, not the EHR's."""
    resource: dict[str, Any] = orjson.loads(body)
    meta = {k: v for k, v in (resource.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
    if meta:
        resource["meta"] = meta
    else:
        resource.pop("meta", None)
    return resource


class Outgoing:
    """One resource on its way to an EHR: its reference, content hash and the references it makes.
    A resource read from the projection keeps its stored bytes and hash, and is parsed only if sent
    (most dependencies of a change are held by the EHR already, unchanged)."""

    __slots__ = ("_body", "_resource", "content_hash", "primary", "references", "resource_id", "resource_type")

    def __init__(self, resource: dict[str, Any], primary: bool) -> None:
        canonical = orjson.dumps(resource, option=orjson.OPT_SORT_KEYS)
        self.resource_type: str = resource["resourceType"]
        self.resource_id: str = resource["id"]
        self.primary = primary
        self.content_hash = hashlib.sha256(canonical).hexdigest()
        self.references = references_in(canonical)
        self._body: bytes | None = None
        self._resource: dict[str, Any] | None = resource

    @classmethod
    def stored(cls, resource_type: str, resource_id: str, body: bytes, content_hash: str, primary: bool) -> Outgoing:
        """A resource of the projection: its bytes, and the hash the projection keeps of its content."""
        item = cls.__new__(cls)
        item.resource_type, item.resource_id, item.primary = resource_type, resource_id, primary
        item.content_hash = content_hash
        item.references = references_in(body)
        item._body, item._resource = body, None
        return item

    @property
    def resource(self) -> dict[str, Any]:
        if self._resource is None:
            assert self._body is not None
            self._resource = from_projection(self._body)
        return self._resource

    @property
    def reference(self) -> str:
        return f"{self.resource_type}/{self.resource_id}"

    @property
    def rank(self) -> tuple[int, int, str]:
        """Where it goes in a delivery: what others reference first."""
        groups = any(r.startswith(f"{self.resource_type}/") for r in self.references)  # a panel's hasMember
        return ORDER.get(self.resource_type, 99), int(groups), self.reference


def in_order(items: list[Outgoing] | Any) -> list[Outgoing]:
    """Resources in the order an EHR needs them (what is referenced first)."""
    return sorted(items, key=lambda o: o.rank)


def unsent(items: list[Outgoing], held: dict[str, tuple[str, str]]) -> list[Outgoing]:
    """What the EHR does not hold already with the same content."""
    return [o for o in items if held.get(o.reference, ("", ""))[1] != o.content_hash]


@dataclass
class Delivered:
    """What one delivery wrote: our reference -> the EHR's id, and the content hash sent."""

    written: dict[str, tuple[str, str]] = field(default_factory=dict)
    patients: set[str] = field(default_factory=set)

    def add(self, item: Outgoing, ehr_id: str) -> None:
        """One resource written; whose data went out (the accounting of disclosures lists every
        delivery of a person's data)."""
        self.written[item.reference] = (ehr_id, item.content_hash)
        patient = compartment_patient(item.resource)
        if patient:
            self.patients.add(patient)


def identifier_query(resource: dict[str, Any]) -> str | None:
    """The ``If-None-Exist`` search of a conditional create: the resource's first full identifier."""
    for identifier in resource.get("identifier") or []:
        if identifier.get("system") and identifier.get("value"):
            return f"identifier={identifier['system']}|{identifier['value']}"
    return None


def rewrite(value: Any, mapping: dict[str, str]) -> Any:
    """``value`` with every ``reference`` found in ``mapping`` replaced by what it maps to."""
    if isinstance(value, dict):
        out = {k: rewrite(v, mapping) for k, v in value.items()}
        reference = out.get("reference")
        if isinstance(reference, str) and reference in mapping:
            out["reference"] = mapping[reference]
        return out
    if isinstance(value, list):
        return [rewrite(v, mapping) for v in value]
    return value


def rewritten(item: Outgoing, mapping: dict[str, str]) -> dict[str, Any]:
    """The resource with its references pointing at the EHR's ids; the resource itself when the EHR
    holds everything it references under our ids (an EHR that takes PUT)."""
    if all(mapping.get(reference, reference) == reference for reference in item.references):
        return item.resource
    result: dict[str, Any] = rewrite(item.resource, mapping)
    return result
