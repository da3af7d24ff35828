"""Deterministic synthetic demo data, written through the same operations the API uses.

One program, 3 peer specialists, 12 participants (each with a care team, a goal, a consent, two
finished encounters with signed notes, and outcome assessments over time — ``seed_outcomes``) and
4 referrals in different states. Billing: the program and its specialists have NPIs, the specialists
North Carolina certifications, every participant an address and NC Medicaid coverage, and the
referrals an ICD-10-CM reason, so the sessions after an accepted referral are ready to bill under nc-medicaid. Dates are
relative to the day of seeding so certifications stay current; participants were enrolled 110 to 341
days before it. No real person is described.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from service.cli.seed_outcomes import intake, seed_assessments
from service.domain import (
    CareTeamMemberFields,
    ConsentFields,
    GoalFields,
    NoteFields,
    ParticipantFields,
    PeerEncounterFields,
    PeerSpecialistFields,
    Program,
    ProgramFields,
    ReferralAction,
    ReferralFields,
    TransitionRequest,
)
from service.domain.billing import load_payers
from service.domain.coverage import CoverageFields
from service.domain.instruments import Registry, load_registry
from service.records import coverages, operations
from service.records import types as rt
from service.records.programs import create_program, find_by_code

DEMO_CODE = "demo"
SANDBOX_HOSPITAL = {
    "name": "Sandbox General Hospital",
    "identifier": {
        "type": "other",
        "system": "https://sandbox-hospital.example.org/fhir/sid/organization",
        "value": "SGH",
    },
}
"""The sandbox EHR's hospital (its Organization identifier): the demo consents name it, so the
demo participants' sessions and notes flow to the sandbox."""
SANDBOX_HOSPITAL_KEY = "https://sandbox-hospital.example.org/fhir/sid/organization|SGH"
HOSPITAL_MRN_SYSTEM = "https://sandbox-hospital.example.org/fhir/sid/mrn"

_SPECIALISTS: list[dict[str, Any]] = [
    {
        "name": {"family": "Rivera", "given": ["Alex"]},
        "cert": ("NC", "PSS-10231"),
        "npi": "1881000016",
        "lived": ["mental-health"],
        "languages": ["en", "es"],
        "specialties": ["housing navigation"],
    },
    {
        "name": {"family": "Okafor", "given": ["Jordan"]},
        "cert": ("NC", "PSS-10877"),
        "npi": "1881000024",
        "lived": ["substance-use", "justice-involvement"],
        "languages": ["en"],
        "specialties": ["recovery coaching"],
    },
    {
        "name": {"family": "Nguyen", "given": ["Sam"]},
        "cert": ("NC", "CPC-55120"),
        "npi": "1881000032",
        "lived": ["veteran", "mental-health"],
        "languages": ["en", "vi"],
        "specialties": ["veterans", "groups"],
    },
]
_GIVEN = [
    "Avery",
    "Blake",
    "Casey",
    "Devon",
    "Emery",
    "Finley",
    "Harper",
    "Jamie",
    "Kendall",
    "Logan",
    "Morgan",
    "Quinn",
]
_FAMILY = [
    "Testperson",
    "Sampleton",
    "Demoson",
    "Fakename",
    "Placeholder",
    "Synthia",
    "Mockwell",
    "Exampleby",
    "Fixture",
    "Stubbs",
    "Dummer",
    "Notreal",
]
_GENDERS = [
    "female",
    "male",
    "other",
    "female",
    "male",
    "unknown",
    "female",
    "male",
    "female",
    "other",
    "male",
    "female",
]
_MODALITIES = ["in-person", "video", "phone", "group"]
_CATEGORIES = [
    ["emotional"],
    ["informational", "instrumental"],
    ["affiliational"],
    ["emotional", "instrumental"],
]
_GOALS = [
    ("housing", "Move into stable housing"),
    ("employment", "Find part-time work"),
    ("relationships", "Reconnect with family"),
    ("health", "Keep regular primary-care visits"),
]
_REFERRAL_PATHS: list[list[ReferralAction]] = [
    [],
    [ReferralAction.RECEIVE, ReferralAction.ACCEPT],
    [ReferralAction.RECEIVE, ReferralAction.ACCEPT, ReferralAction.START],
    [ReferralAction.RECEIVE, ReferralAction.ACCEPT, ReferralAction.START, ReferralAction.COMPLETE],
]


async def seed_demo(
    conn: AsyncConnection, today: date | None = None, registry: Registry | None = None
) -> Program | None:
    """Seed the demo program; returns None (and writes nothing) when it exists already."""
    if await find_by_code(conn, DEMO_CODE) is not None:
        return None
    today = today or datetime.now(UTC).date()
    registry = registry or load_registry()
    program = await create_program(
        conn,
        ProgramFields(
            code=DEMO_CODE,
            name="Harbor Peer Support Collective (demo)",
            identifier_system="https://peerlink.example.org/programs/demo",
            telecom=[{"system": "phone", "value": "+1 503 555 0100"}],
            npi="1881000008",
            taxonomy="251S00000X",
            tax_id="990000001",
            address={"line": ["100 Harbor Street"], "city": "Raleigh", "state": "NC", "postal_code": "27601-0001"},
        ),
    )
    pid = program.id
    payers = load_payers()
    specialists = []
    for s in _SPECIALISTS:
        state, number = s["cert"]
        fields = PeerSpecialistFields.model_validate(
            {
                "name": s["name"],
                "languages": s["languages"],
                "lived_experience": s["lived"],
                "specialties": s["specialties"],
                "npi": s["npi"],
                "certification": {
                    "state": state,
                    "number": number,
                    "issued_on": today - timedelta(days=400),
                    "expires_on": today + timedelta(days=700),
                },
            }
        )
        specialists.append(await operations.create(conn, pid, rt.SPECIALISTS, fields))

    people: list[tuple[str, str]] = []
    for i in range(12):
        peer = specialists[i % 3]
        participant = await operations.create(
            conn,
            pid,
            rt.PARTICIPANTS,
            ParticipantFields.model_validate(
                {
                    "name": {"family": _FAMILY[i], "given": [_GIVEN[i]]},
                    "birth_date": date(1960 + 3 * i, 1 + i % 12, 1 + (7 * i) % 28),
                    "gender": _GENDERS[i],
                    "language": "es" if i % 5 == 0 else "en",
                    "telecom": [{"system": "phone", "value": f"+1 503 555 01{10 + i}"}],
                    "address": {
                        "line": [f"{200 + 10 * i} Example Lane"],
                        "city": "Raleigh",
                        "state": "NC",
                        "postal_code": "27601",
                    },
                    "identifiers": [
                        {
                            "type": "MR",
                            "system": HOSPITAL_MRN_SYSTEM,
                            "value": f"SBX{100000 + i}",
                            "assigner": "Sandbox General Hospital",
                        }
                    ],
                }
            ),
            now=intake(i, today),  # enrolled months ago: the intake the outcome report counts from
        )
        people.append((participant.id, peer.id))
        await coverages.create(
            conn,
            pid,
            CoverageFields.model_validate(
                {
                    "participant_id": participant.id,
                    "payer": "nc-medicaid",
                    "member_id": f"NC{900100 + i}",
                    "period": {"start": today - timedelta(days=400)},
                }
            ),
            payers,
        )
        await operations.create(
            conn,
            pid,
            rt.CARE_TEAM_MEMBERS,
            CareTeamMemberFields.model_validate(
                {
                    "participant_id": participant.id,
                    "specialist_id": peer.id,
                    "role": "peer-specialist",
                    "period": {"start": today - timedelta(days=60)},
                }
            ),
        )
        await operations.create(
            conn,
            pid,
            rt.CARE_TEAM_MEMBERS,
            CareTeamMemberFields.model_validate(
                {
                    "participant_id": participant.id,
                    "role": "primary-care",
                    "clinician": {
                        "name": {"family": "Demo-Clinician", "given": ["Pat"], "prefix": ["Dr."]},
                        "organization": {"name": "Sandbox General Hospital"},
                    },
                    "period": {"start": today - timedelta(days=90)},
                }
            ),
        )
        domain, text = _GOALS[i % 4]
        goal = await operations.create(
            conn,
            pid,
            rt.GOALS,
            GoalFields.model_validate(
                {
                    "participant_id": participant.id,
                    "description": text,
                    "domain": domain,
                    "status": "active",
                    "start_date": today - timedelta(days=55),
                    "target_date": today + timedelta(days=120),
                }
            ),
        )
        await operations.create(
            conn,
            pid,
            rt.CONSENTS,
            ConsentFields.model_validate(
                {
                    "participant_id": participant.id,
                    "recipient": SANDBOX_HOSPITAL,
                    # three in four also share their outcome assessments (the sandbox shows both cases)
                    "categories": ["encounters", "notes", "care-team", *(["assessments"] if i % 4 != 3 else [])],
                    "substance_use": i % 4 == 1,
                    "period": {"start": today - timedelta(days=60), "end": today + timedelta(days=305)},
                }
            ),
        )
        for n in range(2):
            start = datetime.combine(today - timedelta(days=30 - 10 * n - i % 7), time(15 + n, 0), tzinfo=UTC)
            encounter = await operations.create(
                conn,
                pid,
                rt.ENCOUNTERS,
                PeerEncounterFields.model_validate(
                    {
                        "participant_id": participant.id,
                        "specialist_id": peer.id,
                        "start": start,
                        "end": start + timedelta(minutes=30 + 15 * ((i + n) % 3)),
                        "modality": _MODALITIES[(i + n) % 4],
                        "location": "Harbor drop-in center",
                        "support_categories": _CATEGORIES[(i + n) % 4],
                        "goal_ids": [goal.id],
                        "status": "finished",
                        "group_size": 5 if _MODALITIES[(i + n) % 4] == "group" else None,
                    }
                ),
            )
            note = await operations.create(
                conn,
                pid,
                rt.NOTES,
                NoteFields(
                    encounter_id=encounter.id,
                    author_id=peer.id,
                    text=(
                        f"Goal: {text.lower()}. Intervention: reflective listening and shared experience. "
                        "Response: participant named one next step in their own words. Plan: meet next week."
                    ),
                ),
            )
            await operations.sign_note(conn, pid, note.id, expected_version=None)
        if i < len(_REFERRAL_PATHS):
            referral = await operations.create(
                conn,
                pid,
                rt.REFERRALS,
                ReferralFields.model_validate(
                    {
                        "participant_id": participant.id,
                        "referring_organization": SANDBOX_HOSPITAL,
                        "referring_clinician": {"name": {"family": "Demo-Clinician", "given": ["Pat"]}},
                        "reason": {
                            "text": "Peer support for engagement in outpatient care",
                            "code": "F33.1",
                            "system": "http://hl7.org/fhir/sid/icd-10-cm",
                        },
                        "priority": "urgent" if i == 0 else "routine",
                        "requested_at": datetime.combine(today - timedelta(days=20 - i), time(9), tzinfo=UTC),
                    }
                ),
            )
            for action in _REFERRAL_PATHS[i]:
                request = TransitionRequest(
                    by="demo-seed",
                    specialist_id=peer.id if action is ReferralAction.ACCEPT else None,
                    outcome_summary="Engaged in four sessions; connected to housing services."
                    if action is ReferralAction.COMPLETE
                    else None,
                )
                referral = await operations.transition_referral(
                    conn, pid, referral.id, action, request, expected_version=None
                )
    await seed_assessments(conn, pid, registry, people, today)
    return program
