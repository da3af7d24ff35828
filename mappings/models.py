"""The one module that imports fhir.resources.

fhir.resources 7+ ships R5 by default with R4B beside it; R4B is wire-compatible with R4 4.0.1 for
the resources PeerLink uses. Everything else imports the models from here, so a switch of package
or version touches one file.
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.careteam import CareTeam
from fhir.resources.R4B.consent import Consent
from fhir.resources.R4B.documentreference import DocumentReference
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.fhirresourcemodel import FHIRResourceModel
from fhir.resources.R4B.goal import Goal
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.organization import Organization
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.practitioner import Practitioner
from fhir.resources.R4B.practitionerrole import PractitionerRole
from fhir.resources.R4B.procedure import Procedure
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.task import Task
from pydantic import ValidationError

FHIR_VERSION = "4.0.1"

__all__ = [
    "FHIR_VERSION",
    "Bundle",
    "CareTeam",
    "Consent",
    "DocumentReference",
    "Encounter",
    "FHIRResourceModel",
    "FhirValidationError",
    "Goal",
    "OperationOutcome",
    "Organization",
    "Patient",
    "Practitioner",
    "PractitionerRole",
    "Procedure",
    "ServiceRequest",
    "Task",
    "model_class",
    "validate",
]


class FhirValidationError(ValueError):
    """A resource does not conform; ``problems`` name each element (FHIRPath-like) and why."""

    def __init__(self, resource_type: str, problems: list[tuple[str, str]]) -> None:
        self.resource_type = resource_type
        self.problems = problems
        super().__init__(f"{resource_type} is not valid: " + "; ".join(f"{where}: {why}" for where, why in problems))


def model_class(resource_type: str) -> type[FHIRResourceModel]:
    try:
        cls = get_fhir_model_class(resource_type)
    except (KeyError, ValueError):
        cls = None
    if cls is None or not issubclass(cls, FHIRResourceModel):
        raise FhirValidationError(resource_type or "?", [("resourceType", "unknown resource type")])
    return cls


def _where(resource_type: str, loc: tuple[int | str, ...]) -> str:
    path = resource_type
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def validate(resource: dict[str, Any]) -> FHIRResourceModel:
    """Validate a resource dict through its fhir.resources model (never ``model_construct``)."""
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str):
        raise FhirValidationError("?", [("resourceType", "missing")])
    cls = model_class(resource_type)
    try:
        return cls.model_validate(resource)
    except ValidationError as exc:
        problems = [(_where(resource_type, tuple(e["loc"])), e["msg"]) for e in exc.errors()]
        raise FhirValidationError(resource_type, problems) from None
