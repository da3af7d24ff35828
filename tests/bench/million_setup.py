"""The templates of the million bench, on a fresh PostgreSQL database: `peerlink migrate` and `peerlink seed`
as processes, then, in-process through the operations the API uses, more finished sessions with signed notes
for each seeded participant (a program's year: 4 to 10 sessions each), and an EHR client acting for the
sandbox hospital (the organisation the seeded consents name), whose token sees what the consents open."""

from __future__ import annotations

import asyncio
import subprocess
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from mappings import clinical_context, ids
from mappings import context as mapping_context
from service.auth import clients
from service.auth.backend_client import load_private_key, public_jwks
from service.cli.seed import SANDBOX_HOSPITAL, SANDBOX_HOSPITAL_KEY
from service.cli.seed_outcomes import answers_for
from service.domain import (
    CareTeamMemberFields,
    ConsentFields,
    GoalFields,
    NoteFields,
    ParticipantFields,
    PeerEncounterFields,
    ReferralAction,
    ReferralFields,
    TransitionRequest,
)
from service.domain.assessment import AdministeredBy, AssessmentFields
from service.domain.billing import load_payers
from service.domain.coverage import CoverageFields
from service.domain.instruments import Registry, load_registry
from service.fhir.render import fhir_resources
from service.records import assessments, coverages, operations
from service.records import types as rt
from service.records.programs import get_by_code
from service.sandbox.pairing import key_pair
from service.store import Database
from tests.bench.million_data import Template, dsn, hashed_bodies, read_templates
from tests.e2e.gateway import PEERLINK

EHR_CLIENT = "bench-ehr"
MRN_SYSTEM = "https://sandbox-hospital.example.org/fhir/sid/mrn"
SESSIONS = (4, 6, 8, 10, 5, 7, 9, 3)
"""The templates: one participant each, with this many finished sessions with signed notes; templates 0 and 4
also have a PHQ-9 (13 resources), 1 and 5 a completed referral (ServiceRequest + Task). About 21 resources a
participant: Patient, CareTeam, Goal, Consent, 2 a session, and those."""


def migrate_and_seed(env: dict[str, str]) -> None:
    for step in ("migrate", "seed"):
        subprocess.run([PEERLINK, step], env=env, check=True, capture_output=True, timeout=300)


async def _template(conn: Any, program_id: str, specialist_id: str, i: int, registry: Registry) -> str:
    today = datetime.now(UTC).date()
    participant = await operations.create(
        conn,
        program_id,
        rt.PARTICIPANTS,
        ParticipantFields.model_validate(
            {
                "name": {"family": f"Template{i}", "given": ["Sam"]},
                "birth_date": date(1970 + 3 * i, 1 + i, 10 + i),
                "gender": ("female", "male", "other", "unknown")[i % 4],
                "telecom": [{"system": "phone", "value": f"+1 503 555 02{10 + i}"}],
                "address": {
                    "line": [f"{300 + i} Example Lane"],
                    "city": "Raleigh",
                    "state": "NC",
                    "postal_code": "27601",
                },
                "identifiers": [
                    {
                        "type": "MR",
                        "system": MRN_SYSTEM,
                        "value": f"SBX9{i:05d}",
                        "assigner": "Sandbox General Hospital",
                    }
                ],
            }
        ),
    )
    pid = participant.id
    await coverages.create(
        conn,
        program_id,
        CoverageFields.model_validate(
            {
                "participant_id": pid,
                "payer": "nc-medicaid",
                "member_id": f"NC9{i:05d}",
                "period": {"start": today - timedelta(days=400)},
            }
        ),
        load_payers(),
    )
    await operations.create(
        conn,
        program_id,
        rt.CARE_TEAM_MEMBERS,
        CareTeamMemberFields.model_validate(
            {
                "participant_id": pid,
                "specialist_id": specialist_id,
                "role": "peer-specialist",
                "period": {"start": today - timedelta(days=300)},
            }
        ),
    )
    goal = await operations.create(
        conn,
        program_id,
        rt.GOALS,
        GoalFields.model_validate(
            {
                "participant_id": pid,
                "description": "Attend a recovery meeting weekly",
                "domain": "recovery",
                "status": "active",
                "start_date": today - timedelta(days=300),
                "target_date": today + timedelta(days=120),
            }
        ),
    )
    await operations.create(
        conn,
        program_id,
        rt.CONSENTS,
        ConsentFields.model_validate(
            {
                "participant_id": pid,
                "recipient": SANDBOX_HOSPITAL,
                "categories": ["encounters", "notes", "care-team", "assessments", "demographics", "referrals", "goals"],
                "period": {"start": today - timedelta(days=30), "end": today + timedelta(days=700)},
            }
        ),
    )
    for n in range(SESSIONS[i]):
        start = datetime.combine(today - timedelta(days=5 + 30 * n + i), time(14, 30), tzinfo=UTC)
        encounter = await operations.create(
            conn,
            program_id,
            rt.ENCOUNTERS,
            PeerEncounterFields.model_validate(
                {
                    "participant_id": pid,
                    "specialist_id": specialist_id,
                    "start": start,
                    "end": start + timedelta(minutes=45),
                    "modality": ("in-person", "phone", "video")[n % 3],
                    "location": "Harbor drop-in center",
                    "support_categories": ["emotional"],
                    "goal_ids": [goal.id],
                    "status": "finished",
                }
            ),
        )
        note = await operations.create(
            conn,
            program_id,
            rt.NOTES,
            NoteFields(
                encounter_id=encounter.id,
                author_id=specialist_id,
                text=f"Check-in {n}: participant reviewed the week and named one next step in their own words.",
            ),
        )
        signed = start + timedelta(minutes=75)  # the note's date is its session's, as a specialist signs it
        await operations.sign_note(conn, program_id, note.id, expected_version=None, now=signed)
    if i % 4 == 0:
        instrument = registry.get("phq-9")
        completed = datetime.combine(today - timedelta(days=20 + i), time(10), tzinfo=UTC)
        fields = AssessmentFields(
            participant_id=pid,
            instrument=instrument.id,
            instrument_version=instrument.version,
            answers=answers_for(instrument, 11),
            administered_by=AdministeredBy.PEER_SPECIALIST,
            specialist_id=specialist_id,
            completed_at=completed,
        )
        await assessments.create(conn, program_id, fields, registry, completed)
    if i % 4 == 1:
        referral = await operations.create(
            conn,
            program_id,
            rt.REFERRALS,
            ReferralFields.model_validate(
                {
                    "participant_id": pid,
                    "referring_organization": SANDBOX_HOSPITAL,
                    "referring_clinician": {"name": {"family": "Demo-Clinician", "given": ["Pat"]}},
                    "reason": {
                        "text": "Peer support for engagement in outpatient care",
                        "code": "F33.1",
                        "system": "http://hl7.org/fhir/sid/icd-10-cm",
                    },
                    "priority": "routine",
                    "requested_at": datetime.combine(today - timedelta(days=200), time(9), tzinfo=UTC),
                }
            ),
        )
        for action in (ReferralAction.RECEIVE, ReferralAction.ACCEPT, ReferralAction.START, ReferralAction.COMPLETE):
            request = TransitionRequest(
                by="bench",
                specialist_id=specialist_id if action is ReferralAction.ACCEPT else None,
                outcome_summary="Engaged in sessions." if action is ReferralAction.COMPLETE else None,
            )
            referral = await operations.transition_referral(
                conn, program_id, referral.id, action, request, expected_version=None
            )
    return str(pid)


async def _templates(database: Database) -> list[str]:
    registry = load_registry()
    made = []
    async with database.transaction() as conn:
        program = await get_by_code(conn, "demo")
        specialists = (await conn.exec_driver_sql("SELECT id FROM specialists ORDER BY pk")).scalars().all()
        for i in range(len(SESSIONS)):
            made.append(await _template(conn, program.id, specialists[i % len(specialists)], i, registry))
    return made


async def _register_ehr(database: Database, pem: bytes) -> None:
    async with database.transaction() as conn:
        program = await get_by_code(conn, "demo")
        if await clients.find(conn, EHR_CLIENT) is None:
            document = public_jwks(load_private_key(pem))
            await clients.add(
                conn,
                program.id,
                EHR_CLIENT,
                "system/*.rs",
                datetime.now(UTC),
                jwks=document,
                organization=SANDBOX_HOSPITAL_KEY,
            )


async def _mapped(database: Database, templates: list[Template]) -> None:
    """Each template resource as the mappings make it (the projection's hash input), and how each FHIR id was
    derived (``mappings.ids.fhir_id``: kind and domain id), recorded while they render, so a copy's FHIR ids
    are derived from its new record ids as the mappings would."""
    seen: dict[str, tuple[str, str]] = {}

    def recording(system: str, kind: str, domain_id: str) -> str:
        made = ids.fhir_id(system, kind, domain_id)
        seen[made] = (kind, domain_id)
        return made

    modules = (mapping_context, clinical_context)
    for module in modules:
        module.fhir_id = recording  # type: ignore[attr-defined]
    try:
        async with database.read() as conn:
            program = await get_by_code(conn, "demo")
            for template in templates:
                mapped: dict[tuple[str, str], dict[str, Any]] = {}
                sources = {(r["source_kind"], r["source_id"]) for r in template.rows["fhir_resources"]}
                for kind, source_id in sorted(sources):
                    for resource in await fhir_resources(conn, program, kind, source_id):
                        mapped[(resource["resourceType"], resource["id"])] = resource
                hashed_bodies(template, mapped)
                template.system = program.identifier_system
                template.derived = {i: seen[i] for i in template.ids if i in seen}
    finally:
        for module in modules:
            module.fhir_id = ids.fhir_id  # type: ignore[attr-defined]


def prepare(url: str, env: dict[str, str], keys_dir: Path) -> tuple[list[Template], Path]:
    """Seeded, enriched templates read back, and the EHR client's private key file."""
    migrate_and_seed(env)
    key = key_pair(keys_dir / f"{EHR_CLIENT}.pem")

    async def run() -> list[Template]:
        database = Database(url)
        try:
            made = await _templates(database)
            await _register_ehr(database, key.read_bytes())
            conn = await asyncpg.connect(dsn(url))
            try:
                templates = await read_templates(conn, made)
            finally:
                await conn.close()
            await _mapped(database, templates)
        finally:
            await database.dispose()
        return templates

    return asyncio.run(run()), key


async def reregister(url: str, keys_dir: Path) -> Path:
    """A new key for the EHR client of a loaded database (its old key went with the run's folder)."""
    key = key_pair(keys_dir / f"{EHR_CLIENT}.pem")
    conn = await asyncpg.connect(dsn(url))
    try:
        await conn.execute("DELETE FROM auth_clients WHERE client_id = $1", EHR_CLIENT)
    finally:
        await conn.close()
    database = Database(url)
    try:
        await _register_ehr(database, key.read_bytes())
    finally:
        await database.dispose()
    return key


async def patients_of(url: str) -> list[tuple[str, str]]:
    """(Patient id, MRN) of every participant of a loaded database."""
    conn = await asyncpg.connect(dsn(url))
    try:
        rows = await conn.fetch(
            "SELECT r.resource_id, s.token FROM fhir_resources r JOIN fhir_search s ON s.resource_pk = r.pk "
            "AND s.param = 'identifier' AND s.token LIKE $1 WHERE r.resource_type = 'Patient' ORDER BY r.pk",
            f"{MRN_SYSTEM}|%",
        )
    finally:
        await conn.close()
    return [(r["resource_id"], r["token"].split("|", 1)[1]) for r in rows]
