"""Claim readiness for the console: the lines ``service.records.billing.readiness`` judges (the same
the readiness API and ``peerlink claims check`` show), with the people's names for the screen and
the blocking reasons counted."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from service.domain.billing import PayerRegistry
from service.domain.billing.readiness import ReadinessLine, Status
from service.domain.program import Program
from service.records import billing
from service.store import RecordRepository
from service.store import kinds as k

DEFAULT_DAYS = 30


@dataclass(frozen=True)
class ReasonCount:
    code: str
    count: int
    example: str


@dataclass(frozen=True)
class ReadinessView:
    first: date
    last: date
    payer: str | None
    lines: list[ReadinessLine]
    participants: dict[str, str] = field(default_factory=dict)
    specialists: dict[str, str] = field(default_factory=dict)

    @property
    def ready(self) -> int:
        return sum(1 for line in self.lines if line.status is Status.READY)

    @property
    def blocked(self) -> int:
        return len(self.lines) - self.ready

    @property
    def reasons(self) -> list[ReasonCount]:
        counts: Counter[str] = Counter()
        examples: dict[str, str] = {}
        for line in self.lines:
            for reason in line.reasons:
                counts[reason.code] += 1
                examples.setdefault(reason.code, reason.message)
        return [ReasonCount(code, n, examples[code]) for code, n in sorted(counts.items(), key=lambda c: (-c[1], c[0]))]


def default_period(today: date) -> tuple[date, date]:
    return today - timedelta(days=DEFAULT_DAYS), today


async def readiness(
    conn: AsyncConnection, program: Program, payers: PayerRegistry, first: date, last: date, payer: str | None
) -> ReadinessView:
    """The period's lines (BadRequest for a reversed or too long period, or an unknown payer)."""
    lines = await billing.readiness(conn, program, payers, first, last, payer)
    participants = await RecordRepository(k.PARTICIPANTS).find_all(
        conn, program.id, "id", sorted({line.participant_id for line in lines})
    )
    specialists = await RecordRepository(k.SPECIALISTS).find_all(
        conn, program.id, "id", sorted({line.specialist_id for line in lines})
    )
    return ReadinessView(
        first,
        last,
        payer,
        lines,
        {p.id: p.name.text for p in participants},
        {s.id: s.name.text for s in specialists},
    )
