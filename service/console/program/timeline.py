"""A participant's timeline: sessions (with their notes, when the viewer may read notes), outcome
assessments and the referral steps, newest first, and the outcome series for the chart.

Everything is read through the records' own repositories and use cases: the standing assessments
and their change from baseline come from ``service.records.assessments.outcomes``. Notes are not
even loaded when they are withheld (an integrator's view).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from service.domain.encounter import PeerEncounter
from service.domain.goal import Goal
from service.domain.instruments import Instrument, Registry
from service.domain.note import Note
from service.domain.participant import Participant
from service.domain.referral import Referral, ReferralTransition
from service.domain.specialist import PeerSpecialist
from service.fhir.render import all_records
from service.records.assessments import Point, Series, outcomes
from service.store import RecordRepository
from service.store import kinds as k


@dataclass(frozen=True)
class SessionEntry:
    at: datetime
    session: PeerEncounter
    specialist: str
    notes: list[Note]
    kind: str = "session"


@dataclass(frozen=True)
class AssessmentEntry:
    at: datetime
    instrument: Instrument
    point: Point
    kind: str = "assessment"


@dataclass(frozen=True)
class ReferralEntry:
    at: datetime
    referral: Referral
    step: ReferralTransition | None  # None: the referral as the clinic sent it
    kind: str = "referral"


Entry = SessionEntry | AssessmentEntry | ReferralEntry


@dataclass(frozen=True)
class Timeline:
    participant: Participant
    entries: list[Entry]
    series: list[Series]
    goals: list[Goal]
    notes_shown: bool

    @property
    def session_count(self) -> int:
        return sum(1 for e in self.entries if isinstance(e, SessionEntry))


def _name(specialist: PeerSpecialist | None) -> str:
    return specialist.name.text if specialist is not None else "unknown specialist"


def _notes_by_session(notes: list[Note]) -> dict[str, list[Note]]:
    grouped: dict[str, list[Note]] = {}
    for note in sorted(notes, key=lambda n: n.created_at):
        grouped.setdefault(note.encounter_id, []).append(note)
    return grouped


def _referral_entries(referral: Referral) -> list[ReferralEntry]:
    entries = [ReferralEntry(referral.requested_at, referral, None)]
    entries += [ReferralEntry(step.at, referral, step) for step in referral.transitions]
    return entries


async def timeline(
    conn: AsyncConnection, program_id: str, participant_id: str, registry: Registry, *, notes: bool
) -> Timeline:
    """The timeline of one participant (NotFound when the program has none with this id)."""
    participant: Participant = await RecordRepository(k.PARTICIPANTS).get(conn, program_id, participant_id)
    series = await outcomes(conn, program_id, participant_id, registry)
    sessions: list[PeerEncounter] = await all_records(conn, k.ENCOUNTERS, program_id, participant_id=participant_id)
    specialists: dict[str, PeerSpecialist] = {
        s.id: s
        for s in await RecordRepository(k.SPECIALISTS).find_all(
            conn, program_id, "id", sorted({s.specialist_id for s in sessions})
        )
    }
    by_session: dict[str, list[Note]] = {}
    if notes:
        found: list[Note] = await RecordRepository(k.NOTES).find_all(
            conn, program_id, "encounter_id", [s.id for s in sessions]
        )
        by_session = _notes_by_session(found)
    referrals: list[Referral] = await all_records(conn, k.REFERRALS, program_id, participant_id=participant_id)
    goals: list[Goal] = await all_records(conn, k.GOALS, program_id, participant_id=participant_id)
    entries: list[Entry] = [
        SessionEntry(s.start, s, _name(specialists.get(s.specialist_id)), by_session.get(s.id, [])) for s in sessions
    ]
    entries += [AssessmentEntry(p.assessment.completed_at, one.instrument, p) for one in series for p in one.points]
    entries += [entry for referral in referrals for entry in _referral_entries(referral)]
    entries.sort(key=lambda e: e.at.astimezone(UTC), reverse=True)
    return Timeline(participant, entries, series, goals, notes)
