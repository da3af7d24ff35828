"""The referral inbox: the open referrals no specialist holds yet, a referral with its ranked match
suggestions, and the accept and reject steps — through the same use cases as the peer API
(``service.records.matching`` ranks and assigns, ``service.records.operations`` moves the referral).

A referral still ``requested`` is acknowledged (``receive``) in the same transaction as the accept
or reject: whoever decides on it in the console has received it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from service.domain.errors import PreconditionFailed, RuleViolation
from service.domain.matching.config import MatchingConfig
from service.domain.matching.score import Ranking
from service.domain.program import Program
from service.domain.referral import Referral, ReferralAction, ReferralStatus, TransitionRequest
from service.records import matching, operations
from service.store import RecordRepository
from service.store import kinds as k

_PRIORITY = {"stat": 0, "asap": 1, "urgent": 2, "routine": 3}
MAX_REASON = 2000  # as the peer API's assign request


def _reason(reason: str, step: str) -> str:
    reason = reason.strip()
    if not reason:
        raise RuleViolation(f"to {step} a referral, give a reason")
    if len(reason) > MAX_REASON:
        raise RuleViolation(f"the reason is over {MAX_REASON} characters")
    return reason


@dataclass(frozen=True)
class InboxItem:
    referral: Referral
    participant: str


@dataclass(frozen=True)
class Review:
    referral: Referral
    participant: str
    ranking: Ranking
    open: bool

    @property
    def assigned(self) -> str | None:
        """The assigned specialist's name (the ranking names every specialist of the program)."""
        wanted = self.referral.assigned_specialist_id
        if wanted is None:
            return None
        names = {m.specialist_id: m.specialist_name for m in self.ranking.matches}
        names |= {e.specialist_id: e.specialist_name for e in self.ranking.excluded}
        return names.get(wanted, wanted)


async def _names(conn: AsyncConnection, program_id: str, ids: set[str]) -> dict[str, str]:
    found = await RecordRepository(k.PARTICIPANTS).find_all(conn, program_id, "id", sorted(ids))
    return {p.id: p.name.text for p in found}


async def inbox(conn: AsyncConnection, program_id: str) -> list[InboxItem]:
    """New referrals (requested or received, no specialist yet), most pressing first."""
    referrals = await matching.queue(conn, program_id)
    names = await _names(conn, program_id, {r.participant_id for r in referrals})
    referrals.sort(key=lambda r: (_PRIORITY.get(r.priority.value, 9), r.requested_at, r.id))
    return [InboxItem(r, names.get(r.participant_id, "")) for r in referrals]


async def review(
    conn: AsyncConnection, program: Program, referral_id: str, config: MatchingConfig, today: date
) -> Review:
    """One referral with its match suggestions (NotFound when the program has no such referral)."""
    referral, ranking = await matching.matches(conn, program, referral_id, config, today)
    names = await _names(conn, program.id, {referral.participant_id})
    is_open = referral.status in (ReferralStatus.REQUESTED, ReferralStatus.RECEIVED)
    return Review(referral, names.get(referral.participant_id, ""), ranking, is_open)


async def _received(
    conn: AsyncConnection, program_id: str, referral_id: str, by: str, expected_version: int, now: datetime
) -> None:
    """Acknowledge a requested referral (checking the version the user saw); a received one only
    has its version checked."""
    current: Referral = await RecordRepository(k.REFERRALS).get(conn, program_id, referral_id)
    if current.version != expected_version:
        raise PreconditionFailed(
            f"the referral changed while you looked at it (version {current.version}, not {expected_version}); "
            "open it again"
        )
    if current.status is ReferralStatus.REQUESTED:
        await operations.transition_referral(
            conn,
            program_id,
            referral_id,
            ReferralAction.RECEIVE,
            TransitionRequest(by=by),
            expected_version=expected_version,
            now=now,
        )


async def accept(
    conn: AsyncConnection,
    program: Program,
    referral_id: str,
    specialist_id: str,
    *,
    reason: str,
    by: str,
    config: MatchingConfig,
    expected_version: int,
    now: datetime,
) -> matching.Assigned:
    """Accept with the chosen specialist (matching's assign step: hard constraints enforced, an
    override of the top match recorded with the reason)."""
    reason = _reason(reason, "accept")
    await _received(conn, program.id, referral_id, by, expected_version, now)
    return await matching.assign(
        conn,
        program,
        referral_id,
        specialist_id,
        reason=reason,
        by=by,
        config=config,
        expected_version=None,
        now=now,
    )


async def reject(
    conn: AsyncConnection,
    program_id: str,
    referral_id: str,
    *,
    reason: str,
    by: str,
    expected_version: int,
    now: datetime,
) -> Referral:
    reason = _reason(reason, "reject")
    await _received(conn, program_id, referral_id, by, expected_version, now)
    return await operations.transition_referral(
        conn,
        program_id,
        referral_id,
        ReferralAction.REJECT,
        TransitionRequest(by=by, reason=reason),
        expected_version=None,
        now=now,
    )
