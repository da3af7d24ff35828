"""Peer encounter (session) <-> Encounter (US Core Encounter).

Outbound layout (codes in codes/encounter.toml):

- ``class``: v3-ActCode AMB (in person, group) or VR (video, phone).
- ``type``: the service in SNOMED CT, HCPCS H0038 (the billing code), HCPCS modifier HQ as its own
  entry for group sessions, and the exact modality as a program-local code (class cannot tell video
  from phone). Under an overlay that drops ``Encounter.extension`` (epic) the support categories are
  added here too, one entry per category.
- ``extension``: one ``peer-support-category`` per category delivered (valueCoding), ``billable-units``
  (valueUnsignedInt, finished sessions) and the core ``resource-pertainsToGoal`` (valueReference,
  one per goal addressed). Without extensions, billable units follow from ``length`` (CMS 8-minute
  rule) and goals are not carried.
- ``participant``: the specialist twice, as PractitionerRole and as Practitioner, typed PPRF and ATND;
  an overlay whose Encounter profile allows only Practitioner there (``[targets]``, epic: US Core
  3.1.1) gets the Practitioner alone.

Inbound, categories are read from the extension and from ``type``; the modality from the local code,
else from class (+ HQ for group).
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from service.domain import EncounterStatus, Modality, PeerEncounter, PeerEncounterFields, SupportCategory

from . import codes
from .codes import Code
from .context import RESOURCE_TYPES, MappingContext, MappingError, check_valid

KIND = "encounter"
PARTICIPANT_KIND = "participant"
ROLE_KIND = "specialist-role"
SPECIALIST_KIND = "specialist"
GOAL_KIND = "goal"
PARTICIPANT_ELEMENT = "Encounter.participant.individual"


class EncounterExtensions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    support_category: str
    billable_units: str
    goal: str


class ParticipantTypes(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    primary: Code
    attender: Code


class EncounterCodes(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    extensions: EncounterExtensions
    service: Code
    billing: Code
    group_modifier: Code
    service_type: Code
    classes: dict[Modality, Code]
    modalities: dict[Modality, Code]
    support_categories: dict[SupportCategory, Code]
    participant_types: ParticipantTypes
    length_unit: Code

    @model_validator(mode="after")
    def _complete(self) -> Self:
        for name, table, kind in (
            ("classes", self.classes, Modality),
            ("modalities", self.modalities, Modality),
            ("support_categories", self.support_categories, SupportCategory),
        ):
            missing = [member.value for member in kind if member not in table]
            if missing:
                raise ValueError(f"{name} lacks {', '.join(missing)}")
        return self


CODES = codes.load("encounter", EncounterCodes)
UCUM = codes.systems()["ucum"]


def _local(url: str, ctx: MappingContext) -> str:
    """A program-local URL ("{program}/...") for this program."""
    return url.replace(codes.PROGRAM_PLACEHOLDER, ctx.system.rstrip("/"))


def _participant_types() -> list[dict[str, Any]]:
    return [CODES.participant_types.primary.concept(), CODES.participant_types.attender.concept()]


def _participants(specialist_id: str, ctx: MappingContext) -> list[dict[str, Any]]:
    """The specialist as PractitionerRole and as Practitioner, as far as the overlay's Encounter profile
    lets participant.individual point at each (US Core 3.1.1: Practitioner only)."""
    return [
        {"type": _participant_types(), "individual": ctx.reference(kind, specialist_id)}
        for kind in (ROLE_KIND, SPECIALIST_KIND)
        if ctx.overlay.allows(PARTICIPANT_ELEMENT, RESOURCE_TYPES[kind])
    ]


def to_fhir(encounter: PeerEncounter, ctx: MappingContext) -> dict[str, Any]:
    program = ctx.system
    extension_dropped = "extension" in ctx.overlay.omit.get("Encounter", [])
    extensions: list[dict[str, Any]] = [
        {
            "url": _local(CODES.extensions.support_category, ctx),
            "valueCoding": CODES.support_categories[category].coding(program),
        }
        for category in encounter.support_categories
    ]
    if encounter.status is EncounterStatus.FINISHED:
        extensions.append(
            {"url": _local(CODES.extensions.billable_units, ctx), "valueUnsignedInt": encounter.billable_units}
        )
    extensions += [
        {"url": _local(CODES.extensions.goal, ctx), "valueReference": ctx.reference(GOAL_KIND, goal_id)}
        for goal_id in encounter.goal_ids
    ]

    types = [CODES.service.concept(), CODES.billing.concept()]
    if encounter.modality is Modality.GROUP:
        types.append(CODES.group_modifier.concept())
    types.append(CODES.modalities[encounter.modality].concept(program))
    if extension_dropped:
        types += [CODES.support_categories[c].concept(program) for c in encounter.support_categories]

    resource: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": ctx.id_for(KIND, encounter.id),
    }
    if extensions:
        resource["extension"] = extensions
    resource |= {
        "identifier": [ctx.identifier(KIND, encounter.id)],
        "status": encounter.status.value,
        "class": CODES.classes[encounter.modality].coding(program),
        "type": types,
        "serviceType": CODES.service_type.concept(program),
        "subject": ctx.reference(PARTICIPANT_KIND, encounter.participant_id),
        "participant": _participants(encounter.specialist_id, ctx),
    }
    period = {"start": encounter.start.isoformat()}
    if encounter.end is not None:
        period["end"] = encounter.end.isoformat()
    resource["period"] = period
    if encounter.status is EncounterStatus.FINISHED and encounter.duration_minutes is not None:
        unit = CODES.length_unit
        resource["length"] = {
            "value": encounter.duration_minutes,
            "unit": unit.display,
            "system": unit.system,
            "code": unit.code,
        }
    if encounter.location:
        resource["location"] = [{"location": {"display": encounter.location}}]
    return ctx.finish(resource)


# --- inbound ----------------------------------------------------------------------------------------


def _codings(resource: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for t in resource.get("type") or [] for c in (t.get("coding") or []) if isinstance(c, dict)]


def _modality(resource: dict[str, Any], program: str) -> Modality:
    type_codings = _codings(resource)
    for coding in type_codings:
        for modality, code in CODES.modalities.items():
            if code.matches(coding, program):
                return modality
    klass = resource.get("class") or {}
    for modality, code in CODES.classes.items():
        if code.matches(klass, program):
            if modality is Modality.IN_PERSON and any(CODES.group_modifier.matches(c) for c in type_codings):
                return Modality.GROUP
            return modality
    raise MappingError("Encounter.class", "expected ambulatory (AMB) or virtual (VR)")


def _categories(resource: dict[str, Any], ctx: MappingContext) -> list[SupportCategory]:
    program = ctx.system
    url = _local(CODES.extensions.support_category, ctx)
    codings = [e.get("valueCoding") or {} for e in resource.get("extension") or [] if e.get("url") == url]
    codings += _codings(resource)
    found: list[SupportCategory] = []
    for coding in codings:
        for category, code in CODES.support_categories.items():
            if code.matches(coding, program) and category not in found:
                found.append(category)
    return found


def _goals(resource: dict[str, Any], ctx: MappingContext) -> list[str]:
    url = _local(CODES.extensions.goal, ctx)
    return [
        ctx.resolve(e.get("valueReference"), f"Encounter.extension[{i}].valueReference")
        for i, e in enumerate(resource.get("extension") or [])
        if e.get("url") == url
    ]


def _specialist(resource: dict[str, Any], ctx: MappingContext) -> str:
    """The first participant that resolves to one of our specialists (PPRF/ATND-typed ones first)."""
    ours = (CODES.participant_types.primary, CODES.participant_types.attender)
    participants = list(enumerate(resource.get("participant") or []))
    if not participants:
        raise MappingError("Encounter.participant", "the peer specialist is required")

    def typed(item: tuple[int, dict[str, Any]]) -> bool:
        return any(
            code.matches(coding)
            for concept in item[1].get("type") or []
            for coding in concept.get("coding") or []
            for code in ours
        )

    ordered = [p for p in participants if typed(p)] + [p for p in participants if not typed(p)]
    first_error: MappingError | None = None
    for index, participant in ordered:
        try:
            return ctx.resolve(participant.get("individual"), f"Encounter.participant[{index}].individual")
        except MappingError as exc:
            first_error = first_error or exc
    assert first_error is not None
    raise first_error


def from_fhir(resource: dict[str, Any], ctx: MappingContext) -> PeerEncounterFields:
    """An Encounter (ours or a hospital's) as encounter fields; unknown elements are ignored."""
    check_valid(resource)
    if resource.get("resourceType") != "Encounter":
        raise MappingError("resourceType", "expected Encounter")
    status = resource.get("status")
    if status not in {s.value for s in EncounterStatus}:
        raise MappingError("Encounter.status", f"{status!r} has no peer-encounter equivalent")
    period = resource.get("period") or {}
    if not period.get("start"):
        raise MappingError("Encounter.period.start", "the session start is required")
    locations = resource.get("location") or []
    data = {
        "participant_id": ctx.resolve(resource.get("subject"), "Encounter.subject"),
        "specialist_id": _specialist(resource, ctx),
        "start": period["start"],
        "end": period.get("end"),
        "modality": _modality(resource, ctx.system),
        "location": ((locations[0].get("location") or {}).get("display") if locations else None),
        "support_categories": _categories(resource, ctx),
        "goal_ids": _goals(resource, ctx),
        "status": status,
    }
    try:
        return PeerEncounterFields.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"]))
        raise MappingError(f"Encounter ({where})" if where else "Encounter", first["msg"]) from None
