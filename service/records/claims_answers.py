"""The payer's answers to an exported 837P: a 999 acknowledgement (the file's transaction accepted or
rejected, with the segments in error) and an 835 remittance (per claim and line: paid, adjusted with
CARC/RARC codes, denied), matched back to the claims and their sessions by claim number and line
control number (REF*6R); and the claims as they stand (paid, adjusted, outstanding)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from mappings.x12 import answers
from service.domain.errors import BadRequest
from service.store.tables import claim_files, claim_lines

from .operations import utcnow

MAX_BYTES = 20_000_000
REJECTED = frozenset({"R", "M", "W", "X"})


@dataclass
class Ingested:
    kind: str
    matched: list[dict[str, Any]] = field(default_factory=list)
    """One entry per claim line matched: claim_number, line_control, session_id, status."""
    unmatched: list[str] = field(default_factory=list)
    """What the file names that no claim of this program is (claim numbers or group control numbers)."""
    errors: list[dict[str, Any]] = field(default_factory=list)
    """999: the segments in error (IK3/IK4)."""


async def _999(conn: AsyncConnection, program_id: str, document: str, at: datetime) -> Ingested:
    result = Ingested("999")
    for ack in answers.read_999(document):
        group = int(ack.group_control) if ack.group_control.isdigit() else -1
        row = (
            await conn.execute(
                select(claim_files).where(claim_files.c.program_id == program_id, claim_files.c.group_control == group)
            )
        ).first()
        if row is None:
            result.unmatched.append(f"group {ack.group_control}")
            continue
        codes = [t.code for t in ack.transactions if t.control.lstrip("0") == str(row.transaction_control)]
        code = codes[0] if codes else ack.group_code
        errors = [asdict(e) for t in ack.transactions for e in t.errors]
        result.errors += errors
        await conn.execute(
            update(claim_files).where(claim_files.c.pk == row.pk).values(ack_code=code, ack_errors=errors, acked_at=at)
        )
        status = "rejected" if code in REJECTED else "accepted"
        c = claim_lines.c
        await conn.execute(
            update(claim_lines).where(c.file_pk == row.pk, c.status == "sent").values(status=status, updated_at=at)
        )
        for line in (await conn.execute(select(claim_lines).where(c.file_pk == row.pk))).mappings():
            result.matched.append(_match(line, line["status"]))
    return result


def _match(line: Any, status: str) -> dict[str, Any]:
    return {
        "claim_number": line["claim_number"],
        "line_control": line["line_control"],
        "session_id": line["session_id"],
        "status": status,
    }


def _status(claim: answers.ClaimPaid, paid: Decimal, charge: Decimal) -> str:
    if claim.status == "4" or paid == 0:
        return "denied"
    return "paid" if paid >= charge else "partial"


async def _835(conn: AsyncConnection, program_id: str, document: str, at: datetime) -> Ingested:
    result = Ingested("835")
    c = claim_lines.c
    for claim in answers.read_835(document).claims:
        line = (
            (
                await conn.execute(
                    select(claim_lines).where(c.program_id == program_id, c.claim_number == claim.claim_number)
                )
            )
            .mappings()
            .first()
        )
        if line is None:
            result.unmatched.append(claim.claim_number)
            continue
        services = [s for s in claim.services if s.line_control in (None, line["line_control"])]
        if claim.services and not services:
            result.unmatched.append(f"{claim.claim_number}: line {claim.services[0].line_control}")
            continue
        paid = sum((s.paid for s in services), Decimal(0)) if services else claim.paid
        adjustments = [
            {"level": "claim", "group": a.group, "reason": a.reason, "amount": str(a.amount)} for a in claim.adjustments
        ]
        for s in services:
            adjustments += [
                {"level": "line", "group": a.group, "reason": a.reason, "amount": str(a.amount)} for a in s.adjustments
            ]
            adjustments += [{"level": "line", "remark": r} for r in s.remarks]
        status = _status(claim, paid, Decimal(line["charge"]))
        await conn.execute(
            update(claim_lines)
            .where(c.pk == line["pk"])
            .values(
                status=status, paid=str(paid), adjustments=adjustments, payer_claim=claim.payer_claim, updated_at=at
            )
        )
        result.matched.append(_match(line, status))
    return result


async def ingest(conn: AsyncConnection, program_id: str, document: str, now: datetime | None = None) -> Ingested:
    """Read a 999 or 835 and record it against this program's claims (one transaction)."""
    if len(document) > MAX_BYTES:
        raise BadRequest(f"the file is over {MAX_BYTES} bytes")
    try:
        kind = answers.kind(document)
        at = now or utcnow()
        return await (_999 if kind == "999" else _835)(conn, program_id, document, at)
    except answers.AnswerError as exc:
        raise BadRequest(str(exc)) from None


def _outstanding(row: Any) -> Decimal:
    charge = Decimal(row["charge"])
    if row["replaced_by"] is not None or row["status"] == "rejected":
        return Decimal("0.00")
    if row["status"] in ("sent", "accepted"):
        return charge
    adjusted = sum((Decimal(a["amount"]) for a in row["adjustments"] if "amount" in a), Decimal(0))
    return max(charge - Decimal(row["paid"] or 0) - adjusted, Decimal(0)).quantize(Decimal("0.01"))


def describe(row: Any) -> dict[str, Any]:
    paid = Decimal(row["paid"]) if row["paid"] is not None else Decimal(0)
    adjusted = sum((Decimal(a["amount"]) for a in row["adjustments"] if "amount" in a), Decimal(0))
    return {
        "claim_number": row["claim_number"],
        "line_control": row["line_control"],
        "session_id": row["session_id"],
        "participant_id": row["participant_id"],
        "payer": row["payer"],
        "service_date": row["service_date"],
        "frequency": row["frequency"],
        "replaces": row["replaces"],
        "replaced_by": row["replaced_by"],
        "units": row["units"],
        "charge": Decimal(row["charge"]),
        "status": row["status"],
        "paid": paid,
        "adjusted": adjusted,
        "adjustment_codes": sorted(
            {f"{a['group']}-{a['reason']}" for a in row["adjustments"] if "reason" in a}
            | {a["remark"] for a in row["adjustments"] if "remark" in a}
        ),
        "outstanding": _outstanding(row),
        "payer_claim": row["payer_claim"],
    }


async def claims(
    conn: AsyncConnection, program_id: str, first: date, last: date, payer: str | None = None
) -> list[dict[str, Any]]:
    """Every claim with a date of service from ``first`` to ``last``, replaced ones too, oldest first."""
    if last < first:
        raise BadRequest("to is before from")
    c = claim_lines.c
    query = select(claim_lines).where(c.program_id == program_id, c.service_date >= first, c.service_date <= last)
    if payer is not None:
        query = query.where(c.payer == payer)
    rows = (await conn.execute(query.order_by(c.service_date, c.pk))).mappings()
    return [describe(row) for row in rows]
