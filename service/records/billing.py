"""Claim readiness over the stored records: load the finished sessions of a date range (and those
before it that count toward the payers' caps), with their participants, specialists, notes,
referrals and coverages, and judge them with ``service.domain.billing.readiness``."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from service.domain.billing import PayerRegistry
from service.domain.billing.facts import SessionFacts
from service.domain.billing.periods import lookback_days
from service.domain.billing.readiness import ReadinessLine, assess
from service.domain.billing.rules import Period
from service.domain.coverage import Coverage
from service.domain.encounter import PeerEncounter
from service.domain.errors import BadRequest
from service.domain.note import Note
from service.domain.program import Program
from service.domain.referral import Referral
from service.store import RecordRepository
from service.store import kinds as k
from service.store.repository import Range

PAGE = 500
MAX_RANGE_DAYS = 400


def _instant(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


async def _finished(conn: AsyncConnection, program_id: str, low: datetime, high: datetime) -> list[PeerEncounter]:
    repository: RecordRepository[PeerEncounter] = RecordRepository(k.ENCOUNTERS)
    found: list[PeerEncounter] = []
    cursor = None
    while True:
        page = await repository.list(
            conn,
            program_id,
            equals={"status": "finished"},
            ranges={"start": Range(low, high)},
            limit=PAGE,
            cursor=cursor,
        )
        found += page.items
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


async def _by(conn: AsyncConnection, program_id: str, stored: Any, column: str, values: set[str]) -> list[Any]:
    return await RecordRepository(stored).find_all(conn, program_id, column, sorted(values))


def _grouped(records: list[Any], key: str) -> dict[str, list[Any]]:
    groups: dict[str, list[Any]] = defaultdict(list)
    for record in records:
        groups[getattr(record, key)].append(record)
    return groups


async def readiness(
    conn: AsyncConnection,
    program: Program,
    payers: PayerRegistry,
    first: date,
    last: date,
    payer: str | None = None,
) -> list[ReadinessLine]:
    """The readiness of every finished session from ``first`` to ``last`` (inclusive), oldest first;
    with ``payer``, only the lines billed to it."""
    if last < first:
        raise BadRequest("to is before from")
    if (last - first).days > MAX_RANGE_DAYS:
        raise BadRequest(f"ask for at most {MAX_RANGE_DAYS} days at a time")
    if payer is not None and payer not in payers.payers:
        raise BadRequest(f"no payer rule set named {payer!r}; known: {', '.join(payers.ids)}")
    periods: list[Period] = [cap for rules in payers.payers.values() for cap in rules.caps]
    periods += [r.prior_authorization for r in payers.payers.values() if r.prior_authorization is not None]
    if first.year < 4 or last.year > 9998:
        raise BadRequest("from and to must be dates between the years 4 and 9998")
    since = first - timedelta(days=lookback_days(periods) + 1)
    # a day more on each side: a session's date of service is its start's date in its own offset
    sessions = await _finished(conn, program.id, _instant(since), _instant(last + timedelta(days=2)))
    participant_ids = {s.participant_id for s in sessions}
    participants = {p.id: p for p in await _by(conn, program.id, k.PARTICIPANTS, "id", participant_ids)}
    specialists = {
        s.id: s for s in await _by(conn, program.id, k.SPECIALISTS, "id", {s.specialist_id for s in sessions})
    }
    notes: dict[str, list[Note]] = _grouped(
        await _by(conn, program.id, k.NOTES, "encounter_id", {s.id for s in sessions}), "encounter_id"
    )
    referrals: dict[str, list[Referral]] = _grouped(
        await _by(conn, program.id, k.REFERRALS, "participant_id", participant_ids), "participant_id"
    )
    coverages: dict[str, list[Coverage]] = _grouped(
        await _by(conn, program.id, k.COVERAGES, "participant_id", participant_ids), "participant_id"
    )
    facts = [
        SessionFacts(
            encounter=s,
            participant=participants[s.participant_id],
            specialist=specialists[s.specialist_id],
            notes=notes.get(s.id, []),
            referrals=referrals.get(s.participant_id, []),
            coverages=coverages.get(s.participant_id, []),
        )
        for s in sessions
    ]
    lines = assess(facts, payers, program)
    return [line for line in lines if first <= line.date_of_service <= last and (payer is None or line.payer == payer)]
