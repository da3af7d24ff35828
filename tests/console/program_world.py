"""Records for the program screens' tests, made through the records use cases the peer API calls
(service.records.operations.create, service.records.assessments.create): two specialists, each with
a participant on their care team; the first participant has a finished session with a note, two
GAD-7 assessments, a consent for a hospital, and a new referral from a clinic."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from service.domain import Program
from service.domain.assessment import AssessmentFields
from service.domain.instruments import load_registry
from service.records import assessments, operations
from service.records import types as t
from service.store import Database
from tests.factories import (
    assessment_body,
    at,
    care_team_body,
    consent_body,
    encounter_body,
    note_body,
    participant_body,
    referral_body,
    specialist_body,
)

HOSPITAL = {"type": "other", "system": "urn:oid:2.16.840.1.113883.3.7001", "value": "general-hospital"}
HOSPITAL_ORG = f"{HOSPITAL['system']}|{HOSPITAL['value']}"
NOTE_TEXT = "Goal: housing. Intervention: called the landlord together. Plan: visit Tuesday."
GAD7 = ["69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7"]


@dataclass
class ProgramWorld:
    specialist: str
    other_specialist: str
    participant: str
    other_participant: str
    encounter: str
    note: str
    referral: str


async def _create(database: Database, program: Program, rtype: t.RecordType[Any], body: dict[str, Any]) -> str:
    async with database.transaction() as conn:
        record = await operations.create(conn, program.id, rtype, rtype.fields.model_validate(body))
    return str(record.id)


async def build(database: Database, program: Program) -> ProgramWorld:
    mine = await _create(database, program, t.SPECIALISTS, specialist_body())
    other = await _create(database, program, t.SPECIALISTS, specialist_body(name={"family": "Other", "given": ["Sam"]}))
    p1 = await _create(database, program, t.PARTICIPANTS, participant_body())
    p2 = await _create(
        database,
        program,
        t.PARTICIPANTS,
        participant_body(name={"family": "Stranger", "given": ["Jordan"]}, identifiers=[]),
    )
    await _create(database, program, t.CARE_TEAM_MEMBERS, care_team_body(p1, mine))
    await _create(database, program, t.CARE_TEAM_MEMBERS, care_team_body(p2, other))
    session = await _create(database, program, t.ENCOUNTERS, encounter_body(p1, mine))
    note = await _create(database, program, t.NOTES, note_body(session, mine, text=NOTE_TEXT))
    referral = await _create(
        database,
        program,
        t.REFERRALS,
        referral_body(
            p1, referring_organization={"name": "Riverside Clinic"}, reason={"text": "Isolation after discharge"}
        ),
    )
    consent = consent_body(
        p1,
        recipient={"name": "General Hospital", "identifier": HOSPITAL},
        categories=["demographics"],
        substance_use=False,
    )
    await _create(database, program, t.CONSENTS, consent)
    registry = load_registry()
    for days, value in ((40, 3), (2, 1)):
        body = assessment_body(
            p1, mine, completed_at=at(days).isoformat(), answers=[{"link_id": i, "value": value} for i in GAD7]
        )
        async with database.transaction() as conn:
            await assessments.create(
                conn, program.id, AssessmentFields.model_validate(body), registry, datetime.now(UTC)
            )
    return ProgramWorld(mine, other, p1, p2, session, note, referral)
