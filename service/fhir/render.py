"""A stored record as its FHIR resources: the one renderer every write (the projection) and every
delivery uses. It loads what the mapping needs, then maps it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from mappings import (
    assessment,
    care_team,
    consent,
    encounter,
    goal,
    note,
    organization,
    patient,
    practitioner,
    referral,
)
from mappings.context import MappingContext
from mappings.profiles import load_overlay
from service.domain import CareTeamMember, Consent, Note, PeerEncounter, Program
from service.domain.assessment import Assessment, current
from service.domain.encounter import EncounterStatus
from service.domain.errors import BadRequest
from service.domain.instruments import Registry, load_registry
from service.settings import get_settings
from service.store import RecordRepository
from service.store import kinds as k

from .context_rows import REASON, of_referral

PAGE = 500


async def all_records(conn: AsyncConnection, stored: Any, program_id: str, **equals: Any) -> list[Any]:
    repository = RecordRepository(stored)
    items: list[Any] = []
    cursor = None
    while True:
        page = await repository.list(conn, program_id, equals=equals, limit=PAGE, cursor=cursor)
        items += page.items
        if page.next_cursor is None:
            return items
        cursor = page.next_cursor


async def substance_use_consented(conn: AsyncConnection, program_id: str, participant_id: str) -> bool:
    """Whether the participant's records include substance-use data (42 CFR Part 2) per a consent."""
    consents: list[Consent] = await all_records(conn, k.CONSENTS, program_id, participant_id=participant_id)
    return any(c.substance_use for c in consents)


async def delivered_encounters(conn: AsyncConnection, program_id: str, referral: Any) -> list[PeerEncounter]:
    """Finished sessions of the referred participant with the assigned peer, since the referral."""
    if referral.assigned_specialist_id is None:
        return []
    encounters: list[PeerEncounter] = await all_records(
        conn,
        k.ENCOUNTERS,
        program_id,
        participant_id=referral.participant_id,
        specialist_id=referral.assigned_specialist_id,
        status=EncounterStatus.FINISHED.value,
    )
    return [e for e in encounters if e.start >= referral.requested_at]


def instruments() -> Registry:
    """The outcome instruments: the shipped ones and the program's own folder
    (``PEERLINK_INSTRUMENTS_DIR``), read and checked once (``load_registry`` is cached per folder)."""
    return load_registry(get_settings().instruments_dir)


async def outcome_links(conn: AsyncConnection, program_id: str, found_referral: Any) -> list[referral.OutcomeLink]:
    """Per instrument, the referral's baseline (the first standing assessment completed since the
    referral was requested) and, when there is a later one, the latest: what a completed referral's
    Task lists beside the sessions. Like the sessions, only what happened under this referral counts
    (a participant referred again, or with earlier assessments, starts a new baseline)."""
    found: list[Assessment] = await all_records(
        conn, k.ASSESSMENTS, program_id, participant_id=found_referral.participant_id
    )
    standing = [a for a in current(found) if a.completed_at >= found_referral.requested_at]
    known = instruments().instruments
    links: list[referral.OutcomeLink] = []
    for instrument_id in sorted({a.instrument for a in standing}):
        series = [a for a in standing if a.instrument == instrument_id]
        found_instrument = known.get((instrument_id, series[-1].instrument_version))
        title = found_instrument.title if found_instrument else instrument_id  # a file since removed
        links.append(referral.OutcomeLink(series[0].id, title, True))
        if len(series) > 1:
            links.append(referral.OutcomeLink(series[-1].id, title, False))
    return links


async def _program(
    conn: AsyncConnection, program: Program, record_id: str, ctx: MappingContext
) -> list[dict[str, Any]]:
    return [organization.to_fhir(program, ctx)]


async def _participant(
    conn: AsyncConnection, program: Program, record_id: str, ctx: MappingContext
) -> list[dict[str, Any]]:
    return [patient.to_fhir(await RecordRepository(k.PARTICIPANTS).get(conn, program.id, record_id), ctx)]


async def _specialist(
    conn: AsyncConnection, program: Program, record_id: str, ctx: MappingContext
) -> list[dict[str, Any]]:
    specialist = await RecordRepository(k.SPECIALISTS).get(conn, program.id, record_id)
    return [practitioner.to_fhir(specialist, ctx), practitioner.role_to_fhir(specialist, ctx)]


async def _care_team(
    conn: AsyncConnection, program: Program, record_id: str, ctx: MappingContext
) -> list[dict[str, Any]]:
    """``record_id`` is the participant's id: a participant has one care team."""
    await RecordRepository(k.PARTICIPANTS).get(conn, program.id, record_id)
    members: list[CareTeamMember] = await all_records(conn, k.CARE_TEAM_MEMBERS, program.id, participant_id=record_id)
    return [care_team.to_fhir(record_id, members, ctx)]


async def _encounter(
    conn: AsyncConnection, program: Program, record_id: str, ctx: MappingContext
) -> list[dict[str, Any]]:
    return [encounter.to_fhir(await RecordRepository(k.ENCOUNTERS).get(conn, program.id, record_id), ctx)]


async def _note(conn: AsyncConnection, program: Program, record_id: str, ctx: MappingContext) -> list[dict[str, Any]]:
    found: Note = await RecordRepository(k.NOTES).get(conn, program.id, record_id)
    session: PeerEncounter = await RecordRepository(k.ENCOUNTERS).get(conn, program.id, found.encounter_id)
    part2 = await substance_use_consented(conn, program.id, session.participant_id)
    return [note.to_fhir(found, session, ctx, substance_use=part2)]


async def _referral(
    conn: AsyncConnection, program: Program, record_id: str, ctx: MappingContext
) -> list[dict[str, Any]]:
    found = await RecordRepository(k.REFERRALS).get(conn, program.id, record_id)
    kept = await of_referral(conn, program.id, record_id)
    links = [referral.ContextLink(c.resource_type, c.resource_id, c.role == REASON) for c in kept]
    sessions = await delivered_encounters(conn, program.id, found)
    outcomes = await outcome_links(conn, program.id, found)
    return list(referral.to_fhir(found, ctx, sessions, links, outcomes))


async def _clinical_context(
    conn: AsyncConnection, program: Program, record_id: str, ctx: MappingContext
) -> list[dict[str, Any]]:
    """``record_id`` is the referral's id: the supporting resources the clinic sent with it, as kept."""
    await RecordRepository(k.REFERRALS).get(conn, program.id, record_id)
    return [c.body for c in await of_referral(conn, program.id, record_id)]


async def _goal(conn: AsyncConnection, program: Program, record_id: str, ctx: MappingContext) -> list[dict[str, Any]]:
    return [goal.to_fhir(await RecordRepository(k.GOALS).get(conn, program.id, record_id), ctx)]


async def _consent(
    conn: AsyncConnection, program: Program, record_id: str, ctx: MappingContext
) -> list[dict[str, Any]]:
    return [consent.to_fhir(await RecordRepository(k.CONSENTS).get(conn, program.id, record_id), ctx)]


async def _assessment(
    conn: AsyncConnection, program: Program, record_id: str, ctx: MappingContext
) -> list[dict[str, Any]]:
    """The QuestionnaireResponse and its Observations; entered-in-error once an amendment corrects it."""
    repository: RecordRepository[Assessment] = RecordRepository(k.ASSESSMENTS)
    found = await repository.get(conn, program.id, record_id)
    corrections = await repository.list(conn, program.id, equals={"amends_id": found.id}, limit=1)
    instrument = instruments().get(found.instrument, found.instrument_version)
    return assessment.to_fhir(found, instrument, ctx, superseded=bool(corrections.items))


async def _questionnaires(
    conn: AsyncConnection, program: Program, record_id: str, ctx: MappingContext
) -> list[dict[str, Any]]:
    """``record_id`` is the program's id: every instrument version as a Questionnaire (no one's data)."""
    registry = instruments()
    return [assessment.questionnaire(registry.instruments[key], ctx) for key in sorted(registry.instruments)]


Loader = Callable[[AsyncConnection, Program, str, MappingContext], Awaitable[list[dict[str, Any]]]]
LOADERS: dict[str, Loader] = {
    "program": _program,
    "participant": _participant,
    "specialist": _specialist,
    "care-team": _care_team,
    "encounter": _encounter,
    "note": _note,
    "referral": _referral,
    "goal": _goal,
    "consent": _consent,
    "clinical-context": _clinical_context,
    "assessment": _assessment,
    "questionnaires": _questionnaires,
}


def renders(kind: str) -> bool:
    """Whether records of this kind have a FHIR form."""
    return kind in LOADERS


async def fhir_resources(
    conn: AsyncConnection, program: Program, kind: str, record_id: str, overlay: str = "generic"
) -> list[dict[str, Any]]:
    loader = LOADERS.get(kind)
    if loader is None:
        raise BadRequest(f"unknown kind; use one of: {', '.join(LOADERS)}")
    return await loader(conn, program, record_id, MappingContext(program, load_overlay(overlay)))
