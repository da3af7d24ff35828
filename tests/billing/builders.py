"""Domain records for the readiness tests, built directly (no database)."""

from __future__ import annotations

import tempfile
from datetime import UTC, date, datetime, timedelta
from functools import cache
from itertools import count
from pathlib import Path
from typing import Any

from service.domain import Note, Participant, PeerEncounter, PeerSpecialist, Program, Referral
from service.domain.billing import PAYERS_DIR, PayerRegistry, load_payers
from service.domain.billing.facts import SessionFacts
from service.domain.billing.readiness import ReadinessLine, assess
from service.domain.coverage import Coverage

STAMP = datetime(2026, 1, 1, tzinfo=UTC)
NPI = "1234567893"
_ids = count(1)


def _meta(prefix: str) -> dict[str, Any]:
    return {"id": f"{prefix}-{next(_ids)}", "version": 1, "created_at": STAMP, "updated_at": STAMP}


def program(npi: str | None = NPI) -> Program:
    return Program.model_validate(
        {
            **_meta("prog"),
            "code": "demo",
            "name": "Demo",
            "identifier_system": "https://peer.example.org/ids",
            "npi": npi,
        }
    )


def specialist(state: str = "NC", issued: date = date(2025, 1, 1), expires: date = date(2027, 12, 31), **kw: Any):
    body = {
        **_meta("spec"),
        "program_id": "prog",
        "name": {"family": "Peer"},
        "certification": {"state": state, "number": "C-1", "issued_on": issued, "expires_on": expires},
        "languages": ["en"],
        "npi": NPI,
        **kw,
    }
    return PeerSpecialist.model_validate(body)


def participant(birth: date = date(1980, 5, 1)) -> Participant:
    return Participant.model_validate(
        {**_meta("part"), "program_id": "prog", "name": {"family": "X"}, "birth_date": birth, "gender": "other"}
    )


def session(p: Participant, s: PeerSpecialist, start: datetime, minutes: int, **kw: Any) -> PeerEncounter:
    body = {
        **_meta("enc"),
        "program_id": "prog",
        "participant_id": p.id,
        "specialist_id": s.id,
        "start": start,
        "end": start + timedelta(minutes=minutes),
        "modality": "in-person",
        "support_categories": ["emotional"],
        "status": "finished",
        **kw,
    }
    return PeerEncounter.model_validate(body)


def note(e: PeerEncounter, status: str = "final") -> Note:
    return Note.model_validate(
        {
            **_meta("note"),
            "program_id": "prog",
            "encounter_id": e.id,
            "author_id": e.specialist_id,
            "text": "Goal, intervention, response, plan.",
            "status": status,
            "signed_at": STAMP if status != "draft" else None,
        }
    )


def referral(p: Participant, code: str | None = "F33.1", status: str = "accepted", on: date = date(2025, 6, 1)):
    reason: dict[str, Any] = {"text": "peer support"}
    if code:
        reason |= {"code": code, "system": "http://hl7.org/fhir/sid/icd-10-cm"}
    return Referral.model_validate(
        {
            **_meta("ref"),
            "program_id": "prog",
            "participant_id": p.id,
            "referring_organization": {"name": "Clinic"},
            "referring_clinician": {"name": {"family": "Doc"}},
            "reason": reason,
            "requested_at": datetime(on.year, on.month, on.day, tzinfo=UTC),
            "status": status,
        }
    )


def coverage(p: Participant, payer: str, start: date = date(2025, 1, 1), **kw: Any) -> Coverage:
    return Coverage.model_validate(
        {
            **_meta("cov"),
            "program_id": "prog",
            "participant_id": p.id,
            "payer": payer,
            "member_id": "M-1",
            "period": {"start": start},
            **kw,
        }
    )


def at(day: date, hour: int = 10) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


@cache
def rated() -> PayerRegistry:
    """The shipped rules, with a program's contracted rate for Texas and New Jersey (their rate is
    not shipped: [rate] is the last table of their files, so a line appended sets it)."""
    folder = Path(tempfile.mkdtemp(prefix="payers-"))
    for payer in ("tx-medicaid", "nj-medicaid-sud"):
        text = (PAYERS_DIR / f"{payer}.toml").read_text()
        (folder / f"{payer}.toml").write_text(text + 'per_unit = "10.00"\n')
    return load_payers(folder)


class Case:
    """One participant under one payer, with a specialist of the payer's state; sessions signed."""

    def __init__(self, payer: str, state: str, **coverage_kw: Any) -> None:
        self.participant = participant()
        self.specialist = specialist(state)
        self.referrals = [referral(self.participant)]
        self.coverages = [coverage(self.participant, payer, **coverage_kw)]
        self.facts: list[SessionFacts] = []
        self.program = program()

    def add(self, start: datetime, minutes: int, *, signed: bool = True, **kw: Any) -> PeerEncounter:
        e = session(self.participant, self.specialist, start, minutes, **kw)
        notes = [note(e, "final" if signed else "draft")]
        self.facts.append(SessionFacts(e, self.participant, self.specialist, notes, self.referrals, self.coverages))
        return e

    def lines(self) -> list[ReadinessLine]:
        return assess(self.facts, rated(), self.program)

    def one(self, start: datetime, minutes: int, **kw: Any) -> ReadinessLine:
        self.add(start, minutes, **kw)
        return self.lines()[-1]


def codes(line: ReadinessLine) -> list[str]:
    return [r.code for r in line.reasons]
