"""Books for the claim tests, written through the records layer: a program that can bill (NPI,
taxonomy, tax id, ZIP+4 address), a specialist certified in the payer's state, a participant with
an accepted, coded referral and coverage, and sessions with signed notes; the shipped rules with a
rate and a claims route for every state."""

from __future__ import annotations

import tempfile
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from service.domain import (
    NoteFields,
    ParticipantFields,
    PeerEncounterFields,
    PeerSpecialistFields,
    ProgramFields,
    ReferralAction,
    ReferralFields,
    TransitionRequest,
)
from service.domain.billing import PAYERS_DIR, PayerRegistry, load_payers
from service.domain.coverage import CoverageFields
from service.records import coverages, operations
from service.records import types as rt
from service.records.programs import create_program

STATES = {"tx-medicaid": "TX", "nj-medicaid-sud": "NJ", "nc-medicaid": "NC"}
ROUTE = """
[claims]
payer_name = "TEST PAYER"
payer_id = "TESTPAYER"
receiver_name = "TEST CLEARINGHOUSE"
receiver_id = "TESTCH"
source = "Test route."
why = "Tests bill every state."
"""


@cache
def billable() -> PayerRegistry:
    """The shipped rules; Texas and New Jersey with a program's rate and claims route."""
    folder = Path(tempfile.mkdtemp(prefix="payers-"))
    for payer in ("tx-medicaid", "nj-medicaid-sud"):
        text = (PAYERS_DIR / f"{payer}.toml").read_text()
        (folder / f"{payer}.toml").write_text(text + 'per_unit = "10.00"\n' + ROUTE)
    return load_payers(folder)


PROVIDER: dict[str, Any] = {
    "npi": "1881000008",
    "taxonomy": "251S00000X",
    "tax_id": "990000001",
    "address": {"line": ["1 Main St"], "city": "Raleigh", "state": "NC", "postal_code": "27601-0001"},
}


async def books(conn: Any, payer: str, code: str = "books", **provider: Any) -> dict[str, Any]:
    program = await create_program(
        conn,
        ProgramFields.model_validate(
            {"code": code, "name": "Test Peer Program", "identifier_system": f"https://peer.example.org/{code}"}
            | PROVIDER
            | provider
        ),
    )
    pid = program.id
    certification = {"state": STATES[payer], "number": "C-1", "issued_on": "2024-01-01", "expires_on": "2030-01-01"}
    specialist = await operations.create(
        conn,
        pid,
        rt.SPECIALISTS,
        PeerSpecialistFields.model_validate(
            {
                "name": {"family": "Peer", "given": ["Pat"]},
                "certification": certification,
                "npi": "1881000016",
                "languages": ["en"],
            }
        ),
    )
    participant = await operations.create(
        conn,
        pid,
        rt.PARTICIPANTS,
        ParticipantFields.model_validate(
            {
                "name": {"family": "Example", "given": ["Robin"]},
                "birth_date": "1980-04-01",
                "gender": "female",
                "address": {"line": ["5 Elm St"], "city": "Austin", "state": "TX", "postal_code": "78701"},
            }
        ),
    )
    referral = await operations.create(
        conn,
        pid,
        rt.REFERRALS,
        ReferralFields.model_validate(
            {
                "participant_id": participant.id,
                "referring_organization": {"name": "Clinic"},
                "referring_clinician": {"name": {"family": "Doc"}},
                "reason": {"text": "SUD", "code": "F11.20", "system": "http://hl7.org/fhir/sid/icd-10-cm"},
                "requested_at": "2025-12-01T00:00:00Z",
            }
        ),
    )
    for action in (ReferralAction.RECEIVE, ReferralAction.ACCEPT):
        request = TransitionRequest(by="t", specialist_id=specialist.id if action is ReferralAction.ACCEPT else None)
        await operations.transition_referral(conn, pid, referral.id, action, request, expected_version=None)
    coverage = await coverages.create(
        conn,
        pid,
        CoverageFields.model_validate(
            {"participant_id": participant.id, "payer": payer, "member_id": "M100", "period": {"start": "2025-01-01"}}
        ),
        billable(),
    )
    return {"program": program, "specialist": specialist, "participant": participant, "coverage": coverage}


async def session(conn: Any, found: dict[str, Any], day: date, hour: int, minutes: int, signed: bool = True) -> str:
    pid = found["program"].id
    start = datetime.combine(day, time(hour), tzinfo=UTC)
    encounter = await operations.create(
        conn,
        pid,
        rt.ENCOUNTERS,
        PeerEncounterFields.model_validate(
            {
                "participant_id": found["participant"].id,
                "specialist_id": found["specialist"].id,
                "start": start,
                "end": start + timedelta(minutes=minutes),
                "modality": "in-person",
                "support_categories": ["emotional"],
                "status": "finished",
            }
        ),
    )
    note = await operations.create(
        conn, pid, rt.NOTES, NoteFields(encounter_id=encounter.id, author_id=found["specialist"].id, text="Plan.")
    )
    if signed:
        await operations.sign_note(conn, pid, note.id, expected_version=None)
    return str(encounter.id)
