"""Reading the facts the outcome report is computed from, through the records layer."""

from __future__ import annotations

from datetime import date

from sqlalchemy.ext.asyncio import AsyncConnection

from service.domain.assessment import Assessment
from service.domain.encounter import EncounterStatus, PeerEncounter
from service.domain.participant import Participant
from service.domain.program import Program
from service.domain.specialist import PeerSpecialist
from service.fhir.render import all_records
from service.store import kinds as k

from .compute import Enrolment, Facts, Period, Session, utc_day


async def facts(conn: AsyncConnection, program: Program, start: date, end: date) -> Facts:
    """Every participant (intake = the record's creation day), finished session, assessment (all of
    them: corrections are resolved by the computation) and specialist of the program."""
    participants: list[Participant] = await all_records(conn, k.PARTICIPANTS, program.id)
    encounters: list[PeerEncounter] = await all_records(
        conn, k.ENCOUNTERS, program.id, status=EncounterStatus.FINISHED.value
    )
    assessments: list[Assessment] = await all_records(conn, k.ASSESSMENTS, program.id)
    specialists: list[PeerSpecialist] = await all_records(conn, k.SPECIALISTS, program.id)
    return Facts(
        period=Period(start, end),
        enrolments=[Enrolment(p.id, utc_day(p.created_at)) for p in participants],
        sessions=[Session(e.participant_id, e.specialist_id, e.modality.value, utc_day(e.start)) for e in encounters],
        assessments=assessments,
        specialists={s.id: s.name.text for s in specialists},
    )
