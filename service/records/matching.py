"""Matching use cases: gather what matching may use from the store, rank, plan, and assign.

Reads only what the program holds for matching: the referral (reason, priority), the referred
participant's language, state, age and the match preferences they consented to, the Conditions sent
with the referral, who supported them before, and each specialist's record and open caseload.
Assigning is the referral's accept step, with the match and the reason recorded on the transition.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import orjson
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from service.domain.errors import RuleViolation
from service.domain.match_fields import LivedExperience
from service.domain.matching import plan as planning
from service.domain.matching.config import MatchingConfig
from service.domain.matching.score import Candidate, Match, Ranking, Seeker, rank
from service.domain.participant import Participant
from service.domain.program import Program
from service.domain.referral import AssignmentMatch, Referral, ReferralAction, ReferralStatus, TransitionRequest
from service.domain.specialist import PeerSpecialist
from service.store import RecordRepository
from service.store import kinds as k
from service.store.tables import clinical_context, encounters, referrals

from . import operations

OPEN_CASELOAD = (ReferralStatus.ACCEPTED.value, ReferralStatus.IN_PROGRESS.value)
QUEUE = (ReferralStatus.REQUESTED.value, ReferralStatus.RECEIVED.value)
_PRIORITY = {"stat": 0, "asap": 1, "urgent": 2, "routine": 3}


def _age(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


async def _condition_codes(conn: AsyncConnection, program_id: str, referral_id: str) -> list[tuple[str | None, str]]:
    c = clinical_context.c
    rows = await conn.execute(
        select(c.body).where(c.program_id == program_id, c.referral_id == referral_id, c.resource_type == "Condition")
    )
    codes: list[tuple[str | None, str]] = []
    for (body,) in rows:
        resource: dict[str, Any] = orjson.loads(bytes(body))
        for coding in (resource.get("code") or {}).get("coding") or []:
            if isinstance(coding, dict) and isinstance(coding.get("code"), str):
                codes.append((coding.get("system"), coding["code"]))
    return codes


async def _former(conn: AsyncConnection, program_id: str, participant_id: str, referral_id: str) -> frozenset[str]:
    e, r = encounters.c, referrals.c
    seen = await conn.execute(
        select(e.specialist_id).where(e.program_id == program_id, e.participant_id == participant_id).distinct()
    )
    assigned = await conn.execute(
        select(r.assigned_specialist_id)
        .where(r.program_id == program_id, r.participant_id == participant_id, r.id != referral_id)
        .where(r.assigned_specialist_id.is_not(None))
        .distinct()
    )
    return frozenset(row[0] for row in [*seen, *assigned] if row[0])


async def seeker(
    conn: AsyncConnection, program_id: str, referral: Referral, config: MatchingConfig, today: date
) -> Seeker:
    participant: Participant = await RecordRepository(k.PARTICIPANTS).get(conn, program_id, referral.participant_id)
    codes = await _condition_codes(conn, program_id, referral.id)
    if referral.reason.code:
        codes.append((referral.reason.system, referral.reason.code))
    areas: set[LivedExperience] = set()
    for system, code in codes:
        areas |= config.areas_of_code(system, code)
    derived = config.areas.derived
    if set(derived.co_occurring_when) <= areas:
        areas.add(LivedExperience.CO_OCCURRING)
    if _age(participant.birth_date, today) <= derived.youth_max_age:
        areas.add(LivedExperience.YOUTH)
    return Seeker(
        referral_id=referral.id,
        participant_id=participant.id,
        language=participant.language,
        state=participant.address.state if participant.address else None,
        preferences=participant.match_preferences,
        derived_areas=frozenset(areas),
        former_specialists=await _former(conn, program_id, participant.id, referral.id),
        queue_key=(
            _PRIORITY.get(referral.priority.value, 9),
            referral.requested_at.astimezone(UTC).isoformat(),
            referral.id,
        ),
    )


async def candidates(conn: AsyncConnection, program_id: str) -> list[Candidate]:
    r = referrals.c
    counts: dict[str, int] = dict(
        (
            await conn.execute(
                select(r.assigned_specialist_id, func.count())
                .where(r.program_id == program_id, r.status.in_(OPEN_CASELOAD))
                .where(r.assigned_specialist_id.is_not(None))
                .group_by(r.assigned_specialist_id)
            )
        ).all()
    )
    repository: RecordRepository[PeerSpecialist] = RecordRepository(k.SPECIALISTS)
    found: list[Candidate] = []
    cursor: str | None = None
    while True:
        page = await repository.list(conn, program_id, limit=500, cursor=cursor)
        found += [Candidate(s, int(counts.get(s.id, 0))) for s in page.items]
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


async def matches(
    conn: AsyncConnection, program: Program, referral_id: str, config: MatchingConfig, today: date
) -> tuple[Referral, Ranking]:
    referral: Referral = await RecordRepository(k.REFERRALS).get(conn, program.id, referral_id)
    who = await seeker(conn, program.id, referral, config, today)
    return referral, rank(who, await candidates(conn, program.id), config.weights_for(program.code), today)


@dataclass(frozen=True)
class Assigned:
    referral: Referral
    chosen: Match
    top: Match
    of: int
    reason: str

    @property
    def override(self) -> bool:
        return self.chosen.specialist_id != self.top.specialist_id

    def audit_detail(self, by: str) -> dict[str, Any]:
        """The assignment as its audit record keeps it, the same from the peer API and the console."""
        return {
            "referral_id": self.referral.id,
            "specialist_id": self.chosen.specialist_id,
            "rank": self.chosen.rank,
            "of": self.of,
            "score": str(self.chosen.score),
            "top_specialist_id": self.top.specialist_id,
            "override": self.override,
            "by": by,
            # the factor values at the time of assignment, for the evidence of whether matching helps
            "factors": {f.factor: str(f.value) for f in self.chosen.factors},
        }


async def assign(
    conn: AsyncConnection,
    program: Program,
    referral_id: str,
    specialist_id: str,
    *,
    reason: str,
    by: str,
    config: MatchingConfig,
    expected_version: int | None,
    now: datetime,
) -> Assigned:
    """Accept the referral with the chosen specialist. A specialist who breaks a hard constraint is
    refused; one below the top match is allowed, and the override is recorded with the reason."""
    referral, ranking = await matches(conn, program, referral_id, config, now.date())
    chosen = next((m for m in ranking.matches if m.specialist_id == specialist_id), None)
    if chosen is None:
        excluded = next((e for e in ranking.excluded if e.specialist_id == specialist_id), None)
        if excluded is None:
            raise RuleViolation("specialist_id names no peer specialist in this program")
        raise RuleViolation(f"the specialist cannot take this referral: {'; '.join(excluded.reasons)}")
    top = ranking.matches[0]
    note = f"match rank {chosen.rank} of {len(ranking.matches)}, score {chosen.score:g}"
    if chosen.specialist_id != top.specialist_id:
        note += f"; overrides the top match {top.specialist_id} (score {top.score:g})"
    request = TransitionRequest(by=by, reason=f"{reason} [{note}]", specialist_id=specialist_id)
    kept = AssignmentMatch(
        rank=chosen.rank,
        of=len(ranking.matches),
        score=chosen.score,
        top_score=top.score,
        overridden=chosen.specialist_id != top.specialist_id,
        factors={f.factor: f.value for f in chosen.factors},
        weights={f.factor: f.weight for f in chosen.factors},
    )
    accepted = await operations.transition_referral(
        conn,
        program.id,
        referral.id,
        ReferralAction.ACCEPT,
        request,
        expected_version=expected_version,
        now=now,
        match=kept,
    )
    return Assigned(accepted, chosen, top, len(ranking.matches), reason)


async def queue(conn: AsyncConnection, program_id: str) -> list[Referral]:
    """Open referrals without a specialist: requested or received."""
    repository: RecordRepository[Referral] = RecordRepository(k.REFERRALS)
    found: list[Referral] = []
    for status in QUEUE:
        cursor: str | None = None
        while True:
            page = await repository.list(conn, program_id, equals={"status": status}, limit=500, cursor=cursor)
            found += [r for r in page.items if r.assigned_specialist_id is None]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    return found


async def plan(
    conn: AsyncConnection, program: Program, config: MatchingConfig, today: date
) -> tuple[planning.Plan, planning.Plan]:
    """The batch plan for the open queue and, for comparison, the greedy one. Nothing is changed."""
    seekers = [await seeker(conn, program.id, r, config, today) for r in await queue(conn, program.id)]
    problem = planning.problem(seekers, await candidates(conn, program.id), config.weights_for(program.code), today)
    return planning.batch(problem), planning.greedy(problem)
