"""Reading the facts the matching report is computed from, through the records layer."""

from __future__ import annotations

from datetime import date

from sqlalchemy.ext.asyncio import AsyncConnection

from service.domain.encounter import EncounterStatus, PeerEncounter
from service.domain.participant import Participant
from service.domain.program import Program
from service.domain.referral import Referral, ReferralAction
from service.fhir.render import all_records
from service.store import kinds as k

from .compute import Period, Session, utc_day
from .matching_compute import Assignment, MatchFacts


def _age(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def assignment(referral: Referral, participant: Participant | None) -> Assignment | None:
    """The referral's assignment through matching (None: assigned by hand, before matching kept its
    factors, or not assigned)."""
    match, specialist = referral.match, referral.assigned_specialist_id
    accepted = [t for t in referral.transitions if t.action is ReferralAction.ACCEPT]
    if match is None or specialist is None or not accepted:
        return None
    day = utc_day(accepted[-1].at)
    preferences = participant.match_preferences if participant else None
    return Assignment(
        referral_id=referral.id,
        participant_id=referral.participant_id,
        specialist_id=specialist,
        day=day,
        score=match.score,
        top_score=match.top_score,
        overridden=match.overridden,
        factors=dict(match.factors),
        weights=dict(match.weights),
        language=participant.language if participant else "und",
        state=participant.address.state if participant and participant.address else None,
        age=_age(participant.birth_date, day) if participant else None,
        areas=tuple(sorted(a.value for a in preferences.lived_experience)) if preferences else (),
    )


async def facts(conn: AsyncConnection, program: Program, start: date, end: date) -> MatchFacts:
    """Every referral assigned through matching and every finished session of the program."""
    referrals: list[Referral] = await all_records(conn, k.REFERRALS, program.id)
    participants: dict[str, Participant] = {p.id: p for p in await all_records(conn, k.PARTICIPANTS, program.id)}
    encounters: list[PeerEncounter] = await all_records(
        conn, k.ENCOUNTERS, program.id, status=EncounterStatus.FINISHED.value
    )
    found = [assignment(r, participants.get(r.participant_id)) for r in referrals]
    return MatchFacts(
        period=Period(start, end),
        assignments=[a for a in found if a is not None],
        sessions=[Session(e.participant_id, e.specialist_id, e.modality.value, utc_day(e.start)) for e in encounters],
    )
