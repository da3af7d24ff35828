"""Participant <-> Patient (US Core Patient)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from service.domain import ParticipantFields
from service.domain.common import Identifier, IdentifierType
from service.domain.participant import Participant

from . import codes
from .codes import Code
from .context import MappingContext, MappingError, check_valid
from .primitives import day_of

KIND = "participant"
CONTACT_SYSTEMS = ("phone", "sms", "email")


class PatientCodes(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    identifier_types: dict[IdentifierType, Code]


CODES = codes.load("patient", PatientCodes)
LANGUAGE_SYSTEM = codes.systems()["bcp47"]


def identifier_to_fhir(ident: Identifier) -> dict[str, Any]:
    """A domain identifier as a FHIR Identifier (type coded from HL7 v2 table 0203)."""
    out: dict[str, Any] = {}
    code = CODES.identifier_types.get(ident.type)
    if code is not None:
        out["type"] = code.concept()
    out["system"] = ident.system
    out["value"] = ident.value
    if ident.assigner:
        out["assigner"] = {"display": ident.assigner}
    return out


def to_fhir(participant: Participant, ctx: MappingContext) -> dict[str, Any]:
    name: dict[str, Any] = {"use": "official", "family": participant.name.family}
    for part in ("given", "prefix", "suffix"):
        if values := getattr(participant.name, part):
            name[part] = list(values)
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": ctx.id_for(KIND, participant.id),
        "identifier": [ctx.identifier(KIND, participant.id), *map(identifier_to_fhir, participant.identifiers)],
        "active": True,
        "name": [name],
        "gender": participant.gender.value,
        "birthDate": participant.birth_date.isoformat(),
    }
    if participant.telecom:
        resource["telecom"] = [
            {k: v for k, v in (("system", t.system.value), ("value", t.value), ("use", t.use)) if v}
            for t in participant.telecom
        ]
    if address := participant.address:
        fields = (
            ("line", address.line or None),
            ("city", address.city),
            ("state", address.state),
            ("postalCode", address.postal_code),
        )
        resource["address"] = [{k: v for k, v in fields if v}]
    resource["communication"] = [
        {"language": {"coding": [{"system": LANGUAGE_SYSTEM, "code": participant.language}]}, "preferred": True}
    ]
    return ctx.finish(resource)


def _identifier_type(ident: dict[str, Any]) -> IdentifierType:
    for coding in (ident.get("type") or {}).get("coding") or []:
        for kind, code in CODES.identifier_types.items():
            if code.matches(coding):
                return kind
    return IdentifierType.OTHER


def _pick_name(names: list[dict[str, Any]]) -> dict[str, Any]:
    for use in ("official", "usual", None):
        for name in names:
            if use is None or name.get("use") == use:
                return name
    raise MappingError("Patient.name", "at least one name with a family name is required")


def _language(resource: dict[str, Any]) -> str:
    communications = resource.get("communication") or []
    preferred = [c for c in communications if c.get("preferred")] or communications
    for communication in preferred:
        for coding in (communication.get("language") or {}).get("coding") or []:
            if coding.get("system") == LANGUAGE_SYSTEM and coding.get("code"):
                return str(coding["code"])
    return "en"


def from_fhir(resource: dict[str, Any], ctx: MappingContext) -> ParticipantFields:
    """A Patient (ours or a hospital's) as participant fields; unknown elements are ignored."""
    check_valid(resource)
    if resource.get("resourceType") != "Patient":
        raise MappingError("resourceType", "expected Patient")
    name = _pick_name(resource.get("name") or [])
    if not resource.get("birthDate"):
        raise MappingError("Patient.birthDate", "required by the peer program")
    if not resource.get("gender"):
        raise MappingError("Patient.gender", "required (US Core Patient)")
    own_system = ctx.identifier(KIND, "")["system"]
    identifiers = [
        {
            "type": _identifier_type(i).value,
            "system": i.get("system"),
            "value": i.get("value"),
            "assigner": (i.get("assigner") or {}).get("display"),
        }
        for i in resource.get("identifier") or []
        if i.get("system") and i.get("value") and i.get("system") != own_system
    ]
    telecom = [
        {"system": t["system"], "value": t.get("value"), "use": t.get("use") if t.get("use") != "old" else None}
        for t in resource.get("telecom") or []
        if t.get("system") in CONTACT_SYSTEMS
    ]
    addresses = resource.get("address") or []
    address = None
    if addresses:
        a = addresses[0]
        address = {
            "line": a.get("line") or [],
            "city": a.get("city"),
            "state": a.get("state"),
            "postal_code": a.get("postalCode"),
        }
    data = {
        "name": {
            "family": name.get("family"),
            "given": name.get("given") or [],
            "prefix": name.get("prefix") or [],
            "suffix": name.get("suffix") or [],
        },
        "birth_date": day_of(resource["birthDate"], "Patient.birthDate"),
        "gender": resource["gender"],
        "telecom": telecom,
        "address": address,
        "language": _language(resource),
        "identifiers": identifiers,
    }
    try:
        return ParticipantFields.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise MappingError(f"Patient ({'.'.join(map(str, first['loc']))})", first["msg"]) from None
