"""Peer specialist <-> Practitioner (US Core Practitioner) and PractitionerRole (US Core PractitionerRole).

What FHIR carries: name, NPI, the state certification (Practitioner.qualification), languages
(Practitioner.communication), active. What it has no element for travels in PeerLink extensions
(URLs in practitioner.toml, under the program's identifier system): lived experience (valueCode,
one extension per area), specialties (valueString, one per specialty), weekly capacity
(valueInteger). So every PeerSpecialistFields field round-trips.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from service.domain import PeerSpecialist, PeerSpecialistFields
from service.domain.common import HumanName
from service.domain.specialist import LivedExperience

from . import codes
from .codes import PROGRAM_PLACEHOLDER, Code
from .context import MappingContext, MappingError, check_valid
from .organization import npi_identifier, npi_of, telecom

KIND = "specialist"
ROLE_KIND = "specialist-role"
STATE_PLACEHOLDER = "{state}"


class Certification(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    system: str


class Extensions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lived_experience: str
    specialty: str
    weekly_capacity: str


class PractitionerCodes(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    peer_specialist: Code
    certification: Certification
    extensions: Extensions


CODES = codes.load("practitioner", PractitionerCodes)
LANGUAGE_SYSTEM = codes.systems()["bcp47"]


def _local(template: str, ctx: MappingContext) -> str:
    return template.replace(PROGRAM_PLACEHOLDER, ctx.system.rstrip("/"))


def _certification_system(state: str, ctx: MappingContext) -> str:
    return _local(CODES.certification.system, ctx).replace(STATE_PLACEHOLDER, state)


def human_name(name: HumanName) -> dict[str, Any]:
    out: dict[str, Any] = {"use": "official", "family": name.family}
    for part in ("given", "prefix", "suffix"):
        if values := getattr(name, part):
            out[part] = list(values)
    return out


def _extensions(specialist: PeerSpecialist, ctx: MappingContext) -> list[dict[str, Any]]:
    urls = CODES.extensions
    out: list[dict[str, Any]] = [
        {"url": _local(urls.lived_experience, ctx), "valueCode": area.value} for area in specialist.lived_experience
    ]
    out += [{"url": _local(urls.specialty, ctx), "valueString": s} for s in specialist.specialties]
    out.append({"url": _local(urls.weekly_capacity, ctx), "valueInteger": specialist.weekly_capacity})
    return out


def to_fhir(specialist: PeerSpecialist, ctx: MappingContext) -> dict[str, Any]:
    identifiers: list[dict[str, Any]] = [ctx.identifier(KIND, specialist.id)]
    if specialist.npi:
        identifiers.append(npi_identifier(specialist.npi))
    cert = specialist.certification
    resource: dict[str, Any] = {
        "resourceType": "Practitioner",
        "id": ctx.id_for(KIND, specialist.id),
        "extension": _extensions(specialist, ctx),
        "identifier": identifiers,
        "active": specialist.active,
        "name": [human_name(specialist.name)],
        "qualification": [
            {
                "identifier": [{"system": _certification_system(cert.state, ctx), "value": cert.number}],
                "code": CODES.peer_specialist.concept(),
                "period": {"start": cert.issued_on.isoformat(), "end": cert.expires_on.isoformat()},
                "issuer": {"display": cert.state},
            }
        ],
        "communication": [{"coding": [{"system": LANGUAGE_SYSTEM, "code": tag}]} for tag in specialist.languages],
    }
    return ctx.finish(resource)


def role_to_fhir(specialist: PeerSpecialist, ctx: MappingContext) -> dict[str, Any]:
    """The specialist's role in the program. Its telecom is the program's (US Core pd-1 wants contact
    details or an endpoint on every PractitionerRole; a specialist is reached through the program)."""
    resource: dict[str, Any] = {
        "resourceType": "PractitionerRole",
        "id": ctx.id_for(ROLE_KIND, specialist.id),
        "identifier": [ctx.identifier(ROLE_KIND, specialist.id)],
        "active": specialist.active,
        "practitioner": ctx.reference(KIND, specialist.id),
        "organization": ctx.reference("program", ctx.program.id, ctx.program.name),
        "code": [CODES.peer_specialist.concept()],
        "specialty": [CODES.peer_specialist.concept()],
    }
    if ctx.program.telecom:
        resource["telecom"] = telecom(ctx.program.telecom)
    return ctx.finish(resource)


# --- inbound ---------------------------------------------------------------------------------------


def _pick_name(names: list[dict[str, Any]]) -> dict[str, Any]:
    for use in ("official", "usual", None):
        for name in names:
            if use is None or name.get("use") == use:
                return name
    raise MappingError("Practitioner.name", "at least one name with a family name is required")


def _qualification(resource: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    qualifications = resource.get("qualification") or []
    for i, qualification in enumerate(qualifications):
        if any(CODES.peer_specialist.matches(c) for c in (qualification.get("code") or {}).get("coding") or []):
            return i, qualification
    raise MappingError("Practitioner.qualification", "no peer-specialist certification (NUCC 175T00000X)")


def _certification(resource: dict[str, Any], ctx: MappingContext) -> dict[str, Any]:
    i, qualification = _qualification(resource)
    where = f"Practitioner.qualification[{i}]"
    identifiers = [q for q in qualification.get("identifier") or [] if q.get("value")]
    if not identifiers:
        raise MappingError(f"{where}.identifier", "the certification number is required")
    period = qualification.get("period") or {}
    for part in ("start", "end"):
        if not period.get(part):
            raise MappingError(f"{where}.period.{part}", "issue and expiry dates of the certification are required")
    state = (qualification.get("issuer") or {}).get("display")
    if not state:
        prefix = _certification_system("", ctx)
        system = str(identifiers[0].get("system") or "")
        state = system[len(prefix) :] if system.startswith(prefix) else None
    if not state:
        raise MappingError(f"{where}.issuer.display", "the certifying state is required")
    return {
        "state": state,
        "number": identifiers[0]["value"],
        "issued_on": str(period["start"])[:10],
        "expires_on": str(period["end"])[:10],
    }


def _languages(resource: dict[str, Any]) -> list[str]:
    tags: list[str] = []
    for concept in resource.get("communication") or []:
        for coding in concept.get("coding") or []:
            if coding.get("system") == LANGUAGE_SYSTEM and coding.get("code"):
                tags.append(str(coding["code"]))
                break
    return tags or ["en"]


def _from_extensions(resource: dict[str, Any], ctx: MappingContext) -> dict[str, Any]:
    urls = CODES.extensions
    lived_url, specialty_url = _local(urls.lived_experience, ctx), _local(urls.specialty, ctx)
    capacity_url = _local(urls.weekly_capacity, ctx)
    out: dict[str, Any] = {"lived_experience": [], "specialties": []}
    for i, extension in enumerate(resource.get("extension") or []):
        url = extension.get("url")
        if url == lived_url:
            value = extension.get("valueCode")
            if value not in set(LivedExperience):
                raise MappingError(f"Practitioner.extension[{i}].valueCode", "not a known lived-experience area")
            out["lived_experience"].append(value)
        elif url == specialty_url:
            if not extension.get("valueString"):
                raise MappingError(f"Practitioner.extension[{i}].valueString", "a specialty needs a text")
            out["specialties"].append(extension["valueString"])
        elif url == capacity_url:
            if extension.get("valueInteger") is None:
                raise MappingError(f"Practitioner.extension[{i}].valueInteger", "the weekly capacity is a number")
            out["weekly_capacity"] = extension["valueInteger"]
    return out


def from_fhir(resource: dict[str, Any], ctx: MappingContext) -> PeerSpecialistFields:
    """A Practitioner as peer-specialist fields; unknown extensions and elements are ignored."""
    check_valid(resource)
    if resource.get("resourceType") != "Practitioner":
        raise MappingError("resourceType", "expected Practitioner")
    name = _pick_name(resource.get("name") or [])
    data: dict[str, Any] = {
        "name": {
            "family": name.get("family"),
            "given": name.get("given") or [],
            "prefix": name.get("prefix") or [],
            "suffix": name.get("suffix") or [],
        },
        "certification": _certification(resource, ctx),
        "languages": _languages(resource),
        "active": resource.get("active", True),
        "npi": npi_of(resource),
        **_from_extensions(resource, ctx),
    }
    try:
        return PeerSpecialistFields.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise MappingError(f"Practitioner ({'.'.join(map(str, first['loc']))})", first["msg"]) from None
