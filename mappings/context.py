"""What every mapping needs besides the record: the program, the EHR overlay, reference lookups."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mappings.models import FhirValidationError, validate
from service.domain import Program

from .ids import fhir_id, identifier_system
from .profiles import Overlay, load_overlay

# record kind -> FHIR resource type of its main resource
RESOURCE_TYPES = {
    "program": "Organization",
    "participant": "Patient",
    "specialist": "Practitioner",
    "specialist-role": "PractitionerRole",
    "care-team": "CareTeam",
    "encounter": "Encounter",
    "note": "DocumentReference",
    "referral": "ServiceRequest",
    "referral-task": "Task",
    "goal": "Goal",
    "consent": "Consent",
    "service": "Procedure",
    "assessment": "QuestionnaireResponse",
}


class MappingError(ValueError):
    """Inbound FHIR that cannot become a domain record; ``element`` names where (FHIRPath-like)."""

    def __init__(self, element: str, reason: str) -> None:
        self.element = element
        self.reason = reason
        super().__init__(f"{element}: {reason}")


def check_valid(resource: Mapping[str, Any]) -> None:
    """Inbound FHIR is validated by its fhir.resources model first; the first problem names the element."""
    try:
        validate(dict(resource))
    except FhirValidationError as exc:
        where, why = exc.problems[0]
        raise MappingError(where, why) from None


@dataclass(frozen=True)
class MappingContext:
    program: Program
    overlay: Overlay = field(default_factory=load_overlay)
    references: Mapping[str, str] = field(default_factory=dict)
    """Inbound: reference string (ResourceType/id, or a transaction's temporary id) -> domain id."""

    @property
    def system(self) -> str:
        return self.program.identifier_system

    def id_for(self, kind: str, domain_id: str) -> str:
        return fhir_id(self.system, kind, domain_id)

    def reference(self, kind: str, domain_id: str, display: str | None = None) -> dict[str, str]:
        ref = {"reference": f"{RESOURCE_TYPES[kind]}/{self.id_for(kind, domain_id)}"}
        if display:
            ref["display"] = display
        return ref

    def identifier(self, kind: str, domain_id: str) -> dict[str, str]:
        return {"use": "official", "system": identifier_system(self.system, kind), "value": domain_id}

    def domain_id(self, kind: str, resource: Mapping[str, Any]) -> str | None:
        """Our domain id, read back from the business identifier we publish."""
        wanted = identifier_system(self.system, kind)
        for ident in resource.get("identifier") or []:
            if isinstance(ident, Mapping) and ident.get("system") == wanted and ident.get("value"):
                return str(ident["value"])
        return None

    def resolve(self, reference: Mapping[str, Any] | None, element: str) -> str:
        """The domain id a reference points at, or a MappingError naming the element."""
        target = (reference or {}).get("reference")
        if not isinstance(target, str) or not target:
            raise MappingError(element, "a reference is required")
        if target in self.references:
            return self.references[target]
        raise MappingError(element, "the reference does not resolve to a record of this program")

    def knowing(self, *records: tuple[str, str]) -> MappingContext:
        """A context that resolves our own references to the given (kind, domain id) records."""
        known = dict(self.references)
        for kind, domain_id in records:
            known[self.reference(kind, domain_id)["reference"]] = domain_id
        return MappingContext(self.program, self.overlay, known)

    def finish(self, resource: dict[str, Any]) -> dict[str, Any]:
        """Apply the overlay (meta.profile, dropped elements) and validate once with fhir.resources."""
        resource_type = resource["resourceType"]
        for element in self.overlay.omit.get(resource_type, []):
            resource.pop(element, None)
        profiles = self.overlay.profiles.get(resource_type)
        if profiles:
            meta = {**resource.pop("meta", {}), "profile": list(profiles)}
            head = {"resourceType": resource_type, "id": resource.get("id"), "meta": meta}
            resource = {**head, **{k: v for k, v in resource.items() if k not in head}}
        validate(resource)
        return resource
