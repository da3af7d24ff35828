"""The accounting of disclosures of one participant's records (HIPAA 45 CFR 164.528; 42 CFR Part 2
§ 2.24 for substance-use records), as a privacy officer hands it to the person who asked.

A disclosure is a successful (outcome 0) ``rest``, ``exchange`` or ``billing`` event of the participant's
program, by a client acting for an outside organisation (``organization`` set: the recipient; for exchange
the EHR connection's organisation; for a claim file the payer), that touched the participant's Patient.
Each entry gives the date, the recipient organisation and client (or EHR connection), what was
disclosed (the interaction and the kinds of records, with the records' references when the event
concerned this participant alone) and the purpose of use the recipient stated. The default period is
the six years before the request. Records already archived are included when the archive folder is given.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from mappings.ids import fhir_id
from service.domain import Program
from service.domain.errors import BadRequest
from service.store import Database, RecordRepository, kinds
from service.store.tables import audit_entities, audit_log

from .chain import entities_of, instant, parse_instant, patient_id
from .verify import archive_rows

DISCLOSING_TYPES = ("rest", "exchange", "billing")
ACCOUNTING_PERIOD = timedelta(days=6 * 366)
CSV_COLUMNS = (
    "date",
    "recipient_organization",
    "recipient_client",
    "interaction",
    "disclosed",
    "purpose",
    "audit_event",
)
INTERACTIONS = {
    "read": "read",
    "vread": "read of an earlier version",
    "search": "search",
    "history": "history",
    "create": "create",
    "update": "update",
    "patch": "update",
    "transaction": "transaction",
    "peer-read": "read",
    "peer-list": "list",
    "peer-create": "create",
    "peer-update": "update",
    "peer-action": "update",
    "deliver": "sent to the recipient's EHR",
    "poll": "exchanged while polling the recipient's EHR",
    "export": "bulk export",
    "subscription-notification": "sent in a subscription notification",
    "claim-export": "sent to the payer in an 837P claim file",
}


@dataclass(frozen=True)
class Disclosure:
    date: str
    recipient_organization: str
    recipient_client: str | None
    endpoint: str | None
    interaction: str
    disclosed: str
    resource_types: dict[str, int]
    resources: list[str]
    other_participants: bool
    purpose: str | None
    audit_event: str

    def csv_row(self) -> dict[str, str]:
        return {
            "date": self.date,
            "recipient_organization": self.recipient_organization,
            "recipient_client": self.recipient_client or self.endpoint or "",
            "interaction": self.interaction,
            "disclosed": self.disclosed,
            "purpose": self.purpose or "",
            "audit_event": self.audit_event,
        }


def parse_moment(value: str | None, *, end: bool = False) -> datetime | None:
    """A date (the whole day: from its start or, with ``end``, to its end) or a dateTime (UTC when it
    names no zone)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        if "T" not in value:
            start = datetime.combine(date.fromisoformat(value), time(), tzinfo=UTC)
            return start + timedelta(days=1) if end else start
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"not a date (YYYY-MM-DD) or dateTime: {value[:40]}") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def period(start: datetime | None, end: datetime | None, now: datetime | None = None) -> tuple[datetime, datetime]:
    end = end or (now or datetime.now(UTC))
    return start or end - ACCOUNTING_PERIOD, end


def _describe(row: Mapping[str, Any], pid: str) -> Disclosure:
    detail: Mapping[str, Any] = row["detail"] or {}
    patients = {ref for kind, ref in entities_of(detail, str(row["subtype"])) if kind == "patient"}
    others = len(patients - {pid}) > 0
    refs = [v for v in detail.get("entities") or [] if isinstance(v, str) and "/" in v]
    if others:
        refs = [r for r in refs if not (r.startswith("Patient/") and patient_id(r) != pid)]
    types = Counter(r.split("/", 1)[0] for r in refs)
    if not refs:
        types = Counter({"Patient": 1})
    label = INTERACTIONS.get(str(row["subtype"]), str(row["subtype"]))
    if others:
        what = ", ".join(sorted(types))
        disclosed = f"{label}: {what} (the result also concerned other people, who are not named here)"
    else:
        what = ", ".join(f"{n} {t}" for t, n in sorted(types.items()))
        disclosed = f"{label}: {what}"
    purpose = detail.get("purpose")
    endpoint = detail.get("endpoint")
    recorded = row["recorded"]
    return Disclosure(
        date=recorded if isinstance(recorded, str) else instant(recorded),
        recipient_organization=str(row["organization"]),
        recipient_client=row["client_id"],
        endpoint=endpoint if isinstance(endpoint, str) else None,
        interaction=label,
        disclosed=disclosed,
        resource_types=dict(sorted(types.items())),
        resources=[] if others else sorted(set(refs)),
        other_participants=others,
        purpose=purpose if isinstance(purpose, str) else None,
        audit_event=str(row["seq"]),
    )


def _is_disclosure(row: Mapping[str, Any], program_id: str, pid: str, start: datetime, end: datetime) -> bool:
    recorded = row["recorded"]
    moment = parse_instant(recorded) if isinstance(recorded, str) else recorded
    return (
        row["outcome"] == "0"
        and row["type"] in DISCLOSING_TYPES
        and bool(row["organization"])
        and row["program_id"] == program_id
        and start <= moment < end
        and ("patient", pid) in entities_of(row["detail"] or {}, str(row["subtype"]))
    )


async def live(conn: AsyncConnection, program_id: str, pid: str, start: datetime, end: datetime) -> list[Disclosure]:
    touched = select(audit_entities.c.seq).where(audit_entities.c.kind == "patient", audit_entities.c.ref == pid)
    statement = (
        select(audit_log)
        .where(
            audit_log.c.seq.in_(touched),
            audit_log.c.outcome == "0",
            audit_log.c.type.in_(DISCLOSING_TYPES),
            audit_log.c.organization.is_not(None),
            audit_log.c.program_id == program_id,
            audit_log.c.recorded >= start,
            audit_log.c.recorded < end,
        )
        .order_by(audit_log.c.recorded, audit_log.c.seq)
    )
    return [_describe(dict(row), pid) for row in (await conn.execute(statement)).mappings()]


def archived(directory: Path, program_id: str, pid: str, start: datetime, end: datetime) -> list[Disclosure]:
    found: list[Disclosure] = []
    if not directory.is_dir():
        return found
    for path in sorted(directory.glob("audit-*.ndjson")):
        found.extend(_describe(r, pid) for r in archive_rows(path) if _is_disclosure(r, program_id, pid, start, end))
    return found


def report(
    participant_id: str,
    pid: str,
    items: Iterable[Disclosure],
    start: datetime,
    end: datetime,
    *,
    program: str,
    generated: datetime | None = None,
) -> dict[str, Any]:
    ordered = sorted({d.audit_event: d for d in items}.values(), key=lambda d: (d.date, int(d.audit_event)))
    return {
        "participant_id": participant_id,
        "patient_id": pid,
        "program": program,
        "from": instant(start),
        "to": instant(end),
        "generated": instant(generated or datetime.now(UTC)),
        "count": len(ordered),
        "disclosures": [asdict(d) for d in ordered],
    }


def to_csv(document: Mapping[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for item in document["disclosures"]:
        writer.writerow(Disclosure(**item).csv_row())
    return out.getvalue()


async def accounting(
    database: Database,
    program: Program,
    participant_id: str,
    start: datetime,
    end: datetime,
    *,
    archive_dir: Path | None = None,
) -> dict[str, Any]:
    """The report for one participant of ``program`` (NotFound when there is no such participant)."""
    async with database.read() as conn:
        await RecordRepository(kinds.PARTICIPANTS).get(conn, program.id, participant_id)
        pid = fhir_id(program.identifier_system, "participant", participant_id)
        items = await live(conn, program.id, pid, start, end)
    if archive_dir is not None:
        items += await asyncio.to_thread(archived, archive_dir, program.id, pid, start, end)
    return report(participant_id, pid, items, start, end, program=program.code)
