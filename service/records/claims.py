"""837P export: the ready lines of a payer and period become claims (one service line each), written
as one X12 interchange; every claim is remembered so nothing is billed twice, and a session whose
line changed since it was billed goes out as a replacement (frequency 7) naming the original.

All or nothing: the control numbers, the file and its claim rows are written in the caller's
transaction; when nothing can be billed, nothing is written and the caller gets the reasons.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from mappings.x12 import claim837 as x12
from service.domain.billing import PayerRegistry
from service.domain.billing.readiness import ReadinessLine, Status
from service.domain.coverage import Coverage, SubscriberRelationship
from service.domain.errors import BadRequest
from service.domain.program import Program
from service.store import RecordRepository
from service.store import kinds as k
from service.store.tables import claim_counters, claim_files, claim_lines

from . import billing
from .operations import utcnow

SEQUENCE = {1: "P", 2: "S", 3: "T"}


@dataclass
class Skipped:
    session_id: str
    code: str
    message: str


@dataclass
class Export:
    payer: str
    interchange: int
    text: str
    claims: list[x12.ClaimLine]
    sessions: list[str]
    participants: list[str]
    skipped: list[Skipped] = field(default_factory=list)


def program_gaps(program: Program) -> list[str]:
    """What the program record lacks for the billing provider loop (2010AA)."""
    gaps = []
    if program.npi is None:
        gaps.append("npi")
    if program.tax_id is None:
        gaps.append("tax_id")
    address = program.address
    if address is None or not address.line or not address.city or not address.state:
        gaps.append("address (a street line, city and state)")
    elif address.postal_code is None or len(address.postal_code.replace("-", "")) != 9:
        gaps.append("address.postal_code as ZIP+4 (a billing provider's ZIP has 9 digits)")
    return gaps


def fingerprint(line: ReadinessLine) -> str:
    """What a payer sees of the line: when it changes, the claim is replaced."""
    seen = [
        line.procedure_code, line.modifiers, line.units, str(line.charge), line.place_of_service,
        line.date_of_service.isoformat(), line.diagnosis_codes, line.rendering_npi, line.member_id,
        line.authorization_number,
    ]  # fmt: skip
    return hashlib.sha256(orjson.dumps(seen)).hexdigest()


async def next_numbers(conn: AsyncConnection, program_id: str, name: str, count: int = 1) -> int:
    """Reserve ``count`` numbers of a counter; returns the first."""
    c = claim_counters.c
    row = (
        await conn.execute(select(c.value).where(c.program_id == program_id, c.name == name).with_for_update())
    ).first()
    if row is None:
        await conn.execute(insert(claim_counters).values(program_id=program_id, name=name, value=count))
        return 1
    await conn.execute(
        update(claim_counters).where(c.program_id == program_id, c.name == name).values(value=row.value + count)
    )
    return int(row.value) + 1


async def current_claims(conn: AsyncConnection, program_id: str, session_ids: list[str]) -> dict[str, Any]:
    c = claim_lines.c
    found: dict[str, Any] = {}
    for i in range(0, len(session_ids), 400):
        query = select(claim_lines).where(
            c.program_id == program_id, c.session_id.in_(session_ids[i : i + 400]), c.replaced_by.is_(None)
        )
        for row in (await conn.execute(query)).mappings():
            found[row["session_id"]] = row
    return found


def _place(address: Any) -> x12.Place | None:
    if address is None or not address.line or not address.city or not address.state or not address.postal_code:
        return None
    return x12.Place(address.line[0], address.city, address.state, address.postal_code)


def _person(name: Any) -> x12.Person:
    return x12.Person(name.family, name.given[0] if name.given else "")


async def _people(
    conn: AsyncConnection, program_id: str, lines: list[ReadinessLine]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    async def by_id(kind: Any, ids: set[str]) -> dict[str, Any]:
        return {r.id: r for r in await RecordRepository(kind).find_all(conn, program_id, "id", sorted(ids))}

    participants = await by_id(k.PARTICIPANTS, {line.participant_id for line in lines})
    specialists = await by_id(k.SPECIALISTS, {line.specialist_id for line in lines})
    coverages: dict[str, Coverage] = await by_id(k.COVERAGES, {line.coverage_id for line in lines if line.coverage_id})
    return participants, specialists, coverages


def _skip_reason(
    line: ReadinessLine, coverage: Coverage | None, person_place: x12.Place | None
) -> tuple[str, str] | None:
    if line.status is not Status.READY:
        return line.reasons[0].code, "; ".join(f"{r.code}: {r.message}" for r in line.reasons)
    if not line.diagnosis_codes:
        return "diagnosis-missing", "an 837P claim carries at least one diagnosis: code the order's reason (ICD-10-CM)"
    if coverage is None or line.member_id is None:
        return "no-coverage", "no coverage on file for the date of service"
    if person_place is None:
        return "subscriber-address-missing", "an 837P names the subscriber's street, city, state and ZIP: add them"
    if coverage.relationship is not SubscriberRelationship.SELF:
        return "subscriber-not-self", "only members who are their own subscriber are billed (Medicaid members are)"
    if line.rendering_npi is None or line.charge is None:
        return "not-ready", "the line has no rendering NPI or charge"
    return None


async def export(
    conn: AsyncConnection,
    program: Program,
    payers: PayerRegistry,
    payer: str,
    first: date,
    last: date,
    *,
    now: datetime | None = None,
    usage: str = "P",
) -> Export:
    """Write the 837P of ``payer``'s ready, not yet billed sessions from ``first`` to ``last``."""
    rules = payers.payers.get(payer)
    if rules is None:
        raise BadRequest(f"no payer rule set named {payer!r}; known: {', '.join(payers.ids)}")
    route = rules.claims
    if route is None:
        raise BadRequest(f"{payer} has no [claims] table (payer and receiver ids): add it in a program payer file")
    program = await RecordRepository(k.PROGRAMS).get(conn, None, program.id)  # its billing fields as stored now
    gaps = program_gaps(program)
    if gaps:
        raise BadRequest(
            f"the program's billing provider lacks {', '.join(gaps)}: set it with PATCH /peer/v1/billing/provider "
            "or `peerlink claims provider`"
        )
    lines = await billing.readiness(conn, program, payers, first, last, payer)
    current = await current_claims(conn, program.id, [line.session_id for line in lines])
    participants, specialists, coverages = await _people(conn, program.id, lines)
    skipped: list[Skipped] = []
    chosen: list[tuple[ReadinessLine, str, Any]] = []
    for line in lines:
        coverage = coverages.get(line.coverage_id) if line.coverage_id else None
        person = participants.get(line.participant_id)
        reason = _skip_reason(line, coverage, _place(person.address) if person is not None else None)
        if reason is not None:
            skipped.append(Skipped(line.session_id, *reason))
            continue
        mark = fingerprint(line)
        before = current.get(line.session_id)
        if before is not None and before["status"] != "rejected" and before["fingerprint"] == mark:
            skipped.append(Skipped(line.session_id, "already-billed", f"billed as claim {before['claim_number']}"))
            continue
        chosen.append((line, mark, before))
    chosen = chosen[: x12.MAX_CLAIMS]
    if not chosen:
        counts = Counter(s.code for s in skipped)
        summary = ", ".join(f"{n} {code}" for code, n in sorted(counts.items())) or "no finished sessions"
        raise BadRequest(f"nothing to bill to {payer} from {first} to {last}: {summary}")
    at = now or utcnow()
    interchange = await next_numbers(conn, program.id, "interchange")
    group = await next_numbers(conn, program.id, "group")
    transaction = await next_numbers(conn, program.id, "transaction")
    first_claim = await next_numbers(conn, program.id, "claim", len(chosen))
    claims: list[x12.ClaimLine] = []
    for n, (line, _mark, before) in enumerate(chosen):
        number = f"C{first_claim + n:09d}"
        replaced = before is not None and before["status"] != "rejected"
        person = participants[line.participant_id]
        coverage = coverages[line.coverage_id or ""]
        assert line.member_id is not None
        assert line.rendering_npi is not None
        assert line.charge is not None
        claims.append(
            x12.ClaimLine(
                claim_number=number,
                line_control=f"{number}-1",
                frequency=x12.REPLACEMENT if replaced else x12.ORIGINAL,
                original_claim=(before["payer_claim"] or before["claim_number"]) if replaced else None,
                member_id=line.member_id,
                subscriber=_person(person.name),
                birth_date=person.birth_date,
                gender=person.gender.value,
                address=_place(person.address),
                sequence=SEQUENCE.get(coverage.rank, "T"),
                plan=coverage.plan,
                group_number=coverage.group_number,
                rendering=_person(specialists[line.specialist_id].name),
                rendering_npi=line.rendering_npi,
                procedure=line.procedure_code,
                modifiers=line.modifiers,
                units=line.units,
                charge=line.charge,
                place_of_service=line.place_of_service,
                service_date=line.date_of_service,
                diagnoses=line.diagnosis_codes,
                authorization=line.authorization_number,
            )
        )
    assert program.npi is not None
    assert program.tax_id is not None
    place = _place(program.address)
    assert place is not None
    phone = next((t.value for t in program.telecom if t.system.value == "phone"), None)
    sender = x12.Party(program.name, program.npi)
    batch = x12.Interchange(
        sender=sender,
        receiver=x12.Party(route.receiver_name, route.receiver_id),
        payer=x12.Party(route.payer_name, route.payer_id),
        claim_filing=route.claim_filing,
        provider=x12.BillingProvider(
            program.name,
            program.npi,
            program.tax_id,
            place,
            program.taxonomy,
            "".join(ch for ch in phone if ch.isdigit()) if phone else None,
        ),
        interchange_control=interchange,
        group_control=group,
        transaction_control=transaction,
        created=at,
        usage=usage,
        claims=claims,
    )
    text = x12.build(batch)
    file_pk = (
        await conn.execute(
            insert(claim_files)
            .values(
                program_id=program.id, payer=payer, interchange=interchange, group_control=group,
                transaction_control=transaction, claims=len(claims), content=text, created_at=at,
            )
            .returning(claim_files.c.pk)
        )
    ).scalar_one()  # fmt: skip
    rows = []
    for claim, (line, mark, before) in zip(claims, chosen, strict=True):
        if before is not None:
            await conn.execute(
                update(claim_lines)
                .where(claim_lines.c.pk == before["pk"])
                .values(replaced_by=claim.claim_number, updated_at=at)
            )
        rows.append(
            {
                "program_id": program.id, "file_pk": file_pk, "claim_number": claim.claim_number,
                "line_control": claim.line_control, "session_id": line.session_id,
                "participant_id": line.participant_id, "payer": payer, "service_date": line.date_of_service,
                "frequency": claim.frequency, "replaces": before["claim_number"] if before is not None else None,
                "replaced_by": None, "fingerprint": mark, "units": line.units, "charge": str(line.charge),
                "status": "sent", "paid": None, "adjustments": [], "payer_claim": None,
                "created_at": at, "updated_at": at,
            }
        )  # fmt: skip
    await conn.execute(insert(claim_lines), rows)
    return Export(
        payer=payer,
        interchange=interchange,
        text=text,
        claims=claims,
        sessions=[line.session_id for line, _, _ in chosen],
        participants=sorted({line.participant_id for line, _, _ in chosen}),
        skipped=skipped,
    )


def total(claims: list[x12.ClaimLine]) -> Decimal:
    return sum((c.charge for c in claims), Decimal("0.00"))
