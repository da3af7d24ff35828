"""The accounting of disclosures of one participant, for the printable "who received my information"
page: the report ``service.audit.disclosures.accounting`` builds (the same as the peer API's), with
the participant's name for the heading and, for each recipient, the organisation's name as the
participant's consents give it (the report names a recipient by its identifier)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from service.audit import disclosures as accounting
from service.domain.consent import Consent
from service.domain.errors import BadRequest
from service.domain.program import Program
from service.fhir.render import all_records
from service.store import Database, RecordRepository
from service.store import kinds as k


@dataclass(frozen=True)
class DisclosurePage:
    participant_name: str
    program_name: str
    document: dict[str, Any]
    recipients: dict[str, str]
    """Organisation key (``system|value`` or NPI) -> its name, from the participant's consents."""

    @property
    def entries(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.document["disclosures"]
        return items


def recipient_names(consents: list[Consent]) -> dict[str, str]:
    names: dict[str, str] = {}
    for consent in consents:
        org = consent.recipient
        if org.identifier is not None:
            names[f"{org.identifier.system}|{org.identifier.value}"] = org.name
        if org.npi is not None:
            names[org.npi] = org.name
    return names


def period(start: str | None, end: str | None, now: datetime) -> tuple[datetime, datetime]:
    """From the page's ``from`` and ``to`` (dates; empty: the six years before now)."""
    first, last = accounting.period(accounting.parse_moment(start), accounting.parse_moment(end, end=True), now)
    if first >= last:
        raise BadRequest("from must be before to")
    return first, last


async def disclosure_page(
    database: Database,
    program: Program,
    participant_id: str,
    start: datetime,
    end: datetime,
    archive_dir: Path | None,
) -> DisclosurePage:
    """NotFound when the program has no such participant."""
    async with database.read() as conn:
        participant = await RecordRepository(k.PARTICIPANTS).get(conn, program.id, participant_id)
        consents: list[Consent] = await all_records(conn, k.CONSENTS, program.id, participant_id=participant_id)
    document = await accounting.accounting(database, program, participant_id, start, end, archive_dir=archive_dir)
    return DisclosurePage(participant.name.text, program.name, document, recipient_names(consents))
