"""Program <-> Organization (US Core Organization), and outside organisations as contained Organizations.

The program is published as a standalone Organization (kind "program"). Organisations PeerLink only
knows by name (a consent's recipient, an outside clinician's employer) travel as contained
Organizations: they have no record, so no id of their own; ``contained`` and ``organization_fields``
are shared by the CareTeam and Consent mappings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from service.domain import Program
from service.domain.common import ContactPoint, IdentifierType, Organization

from . import codes
from .context import MappingContext
from .patient import CODES as IDENTIFIER_CODES
from .patient import identifier_to_fhir

KIND = "program"
NPI_SYSTEM = codes.systems()["npi"]


def npi_identifier(npi: str) -> dict[str, str]:
    return {"system": NPI_SYSTEM, "value": npi}


def npi_of(resource: Mapping[str, Any]) -> str | None:
    for ident in resource.get("identifier") or []:
        if isinstance(ident, Mapping) and ident.get("system") == NPI_SYSTEM and ident.get("value"):
            return str(ident["value"])
    return None


def telecom(points: Iterable[ContactPoint]) -> list[dict[str, str]]:
    return [{k: v for k, v in (("system", p.system.value), ("value", p.value), ("use", p.use)) if v} for p in points]


def contained(organization: Organization, local_id: str) -> dict[str, Any]:
    """An outside organisation as a contained Organization (name, NPI, its other identifier)."""
    identifiers: list[dict[str, Any]] = []
    if organization.npi:
        identifiers.append(npi_identifier(organization.npi))
    if ident := organization.identifier:
        identifiers.append(identifier_to_fhir(ident))
    resource: dict[str, Any] = {"resourceType": "Organization", "id": local_id}
    if identifiers:
        resource["identifier"] = identifiers
    resource["name"] = organization.name
    return resource


def _identifier_type(ident: Mapping[str, Any]) -> IdentifierType:
    for coding in (ident.get("type") or {}).get("coding") or []:
        for kind, code in IDENTIFIER_CODES.identifier_types.items():
            if code.matches(coding):
                return kind
    return IdentifierType.OTHER


def organization_fields(resource: Mapping[str, Any]) -> dict[str, Any]:
    """Organization fields (name, NPI, first other identifier) from an Organization or a Reference."""
    identifiers = list(resource.get("identifier") or [])
    if isinstance(resource.get("identifier"), Mapping):  # a Reference carries one identifier
        identifiers = [resource["identifier"]]
    other = next((i for i in identifiers if i.get("system") and i.get("value") and i.get("system") != NPI_SYSTEM), None)
    identifier = None
    if other is not None:
        identifier = {
            "type": _identifier_type(other).value,
            "system": other["system"],
            "value": other["value"],
            "assigner": (other.get("assigner") or {}).get("display"),
        }
    return {
        "name": resource.get("name") or resource.get("display"),
        "identifier": identifier,
        "npi": npi_of({"identifier": identifiers}),
    }


def to_fhir(program: Program, ctx: MappingContext) -> dict[str, Any]:
    identifiers: list[dict[str, Any]] = [ctx.identifier(KIND, program.id)]
    if program.npi:
        identifiers.append(npi_identifier(program.npi))
    resource: dict[str, Any] = {
        "resourceType": "Organization",
        "id": ctx.id_for(KIND, program.id),
        "identifier": identifiers,
        "active": True,
        "name": program.name,
    }
    if program.telecom:
        resource["telecom"] = telecom(program.telecom)
    return ctx.finish(resource)
