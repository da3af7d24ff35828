"""A hospital's Patient: matched to a participant by that hospital's MRN, else made and flagged.

A Patient from a hospital is matched to a participant by that hospital's MRN (identifier system and
value, identifier typed MR), with the same birth date and family name. With no match a participant is
created from the Patient and flagged for review (``review_flags``); its MRNs are claimed in
``external_identifiers``. A matched participant's record is left as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from mappings import patient as patient_map
from mappings.context import MappingContext, MappingError
from service.domain import ParticipantFields, Program
from service.domain.common import IdentifierType
from service.domain.errors import PreconditionFailed
from service.domain.participant import Participant
from service.records import operations
from service.records.types import PARTICIPANTS
from service.store import RecordRepository
from service.store import kinds as k
from service.store.tables import review_flags

from .errors import PLAIN, Where, from_mapping, invalid, refused
from .lookups import claim, conditional_matches, record_for, records_with_identifier
from .outcomes import Outcome

PARTICIPANT = "participant"
NEW_PARTICIPANT_REVIEW = "created from a hospital's Patient: no participant had its MRN"


def patient_fields(resource: Any, ctx: MappingContext, where: Where) -> ParticipantFields:
    if not isinstance(resource, dict):
        raise invalid(where("Patient"), "expected a JSON object")
    try:
        return patient_map.from_fhir(resource, ctx)
    except MappingError as exc:
        raise from_mapping(exc, where, "Patient") from None


def hospital_mrns(fields: ParticipantFields) -> list[tuple[str, str]]:
    """The (system, value) of every identifier typed MR, once each, sorted."""
    return sorted({(i.system, i.value) for i in fields.identifiers if i.type is IdentifierType.MRN})


def same_person(candidate: ParticipantFields, fields: ParticipantFields, system: str, value: str) -> bool:
    """Whether a participant holding the MRN (system, value) is the person a Patient describes: the
    participant still has that MRN, and the birth date and family name (any case) agree."""
    return (
        candidate.mrn(system) == value
        and candidate.birth_date == fields.birth_date
        and (candidate.name.family or "").casefold() == (fields.name.family or "").casefold()
    )


async def match_or_create_participant(
    conn: AsyncConnection, program: Program, fields: ParticipantFields, where: Where, now: datetime | None = None
) -> tuple[str, bool]:
    """(participant id, whether it was created): matched on the hospital's MRN, else made and flagged."""
    participants: RecordRepository[Participant] = RecordRepository(k.PARTICIPANTS)
    mrns = hospital_mrns(fields)
    found: set[str] = set()
    for system, value in mrns:
        for participant_id in await records_with_identifier(conn, program.id, "Patient", f"{system}|{value}"):
            candidate = await participants.find(conn, program.id, participant_id)
            if candidate is not None and same_person(candidate, fields, system, value):
                found.add(participant_id)
    if len(found) > 1:
        raise refused(where("Patient.identifier"), "the Patient's MRNs belong to different participants")
    if found:
        return found.pop(), False
    at = now or operations.utcnow()
    participant = await operations.create(conn, program.id, PARTICIPANTS, fields, at)
    for system, value in mrns:
        await claim(conn, program.id, PARTICIPANT, system, value, participant.id, at)
    await conn.execute(
        insert(review_flags).values(
            program_id=program.id,
            kind=PARTICIPANT,
            record_id=participant.id,
            reason=NEW_PARTICIPANT_REVIEW,
            created_at=at,
        )
    )
    return participant.id, True


async def receive_patient(
    conn: AsyncConnection,
    program: Program,
    resource: dict[str, Any],
    *,
    if_none_exist: str | None = None,
    where: Where = PLAIN,
    condition_element: str = "If-None-Exist",
) -> Outcome:
    """A hospital's Patient: the participant it matches (200) or a new one (201)."""
    ctx = MappingContext(program)
    fields = patient_fields(resource, ctx, where)
    if if_none_exist is not None:
        matches = await conditional_matches(conn, program.id, "Patient", if_none_exist, condition_element)
        if len(matches) > 1:
            raise PreconditionFailed("If-None-Exist matches more than one Patient; make it more specific")
        if matches:
            return Outcome("Patient", matches[0], created=False)
    participant_id, created = await match_or_create_participant(conn, program, fields, where)
    return Outcome("Patient", ctx.id_for(PARTICIPANT, participant_id), created)


async def referred_participant(
    conn: AsyncConnection,
    program: Program,
    ctx: MappingContext,
    service_request: dict[str, Any],
    known: Mapping[str, str],
    where: Where,
) -> tuple[str, str]:
    """(the ServiceRequest subject's reference as sent, the participant it names), creating the
    participant from a contained Patient when no MRN matches."""
    element = where("ServiceRequest.subject")
    subject = service_request.get("subject")
    if not isinstance(subject, dict):
        raise invalid(element, "required: the person referred (a Patient reference or a contained Patient)")
    reference = subject.get("reference")
    if isinstance(reference, str) and reference:
        if reference in known:
            return reference, known[reference]
        if reference.startswith("#"):
            contained = service_request.get("contained")
            for index, item in enumerate(contained if isinstance(contained, list) else []):
                if isinstance(item, dict) and item.get("id") == reference[1:]:
                    if item.get("resourceType") != "Patient":
                        raise invalid(element, f"{reference} is not a Patient")
                    at = where(f"ServiceRequest.contained[{index}]")
                    fields = patient_fields(item, ctx, where.with_("Patient", at))
                    participant_id, _ = await match_or_create_participant(
                        conn, program, fields, where.with_("Patient", at)
                    )
                    return reference, participant_id
            raise invalid(element, f"{reference} names no contained resource")
        if reference.startswith("urn:"):
            raise invalid(element, "names no entry of this transaction")
        served = await record_for(conn, program.id, reference, "Patient")
        if served is None:
            raise refused(element, "names no Patient this program serves")
        return reference, served
    ident = subject.get("identifier")
    if isinstance(ident, dict) and ident.get("system") and ident.get("value"):
        matches = await records_with_identifier(conn, program.id, "Patient", f"{ident['system']}|{ident['value']}")
        if len(matches) == 1:
            return ctx.reference(PARTICIPANT, matches[0])["reference"], matches[0]
        reason = "matches more than one participant" if matches else "names no Patient this program serves"
        raise refused(f"{element}.identifier", reason)
    raise invalid(element, "required: a reference to the Patient, or a contained Patient")
