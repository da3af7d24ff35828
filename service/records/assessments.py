"""Outcome assessments: record (scored on the way in), correct by amendment, and read back as
outcome series and as the follow-ups that are due. Every change goes through the change hub."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from service.domain import assessment as rules
from service.domain.assessment import Assessment, AssessmentAnswers, AssessmentFields, Change
from service.domain.errors import PreconditionFailed, RuleViolation
from service.domain.instruments import Instrument, Registry
from service.domain.instruments.schedule import Due, due_occasions
from service.domain.participant import Participant
from service.domain.program import Program
from service.fhir.render import all_records
from service.store import RecordRepository
from service.store import kinds as k

from .changes import record_changed

REPOSITORY: RecordRepository[Assessment] = RecordRepository(k.ASSESSMENTS)


async def _check_circumstances(
    conn: AsyncConnection, program_id: str, participant_id: str, answers: AssessmentAnswers
) -> None:
    specialists = RecordRepository(k.SPECIALISTS)
    if answers.specialist_id is not None and await specialists.find(conn, program_id, answers.specialist_id) is None:
        raise RuleViolation("specialist_id names no peer specialist in this program")
    if answers.encounter_id is not None:
        session = await RecordRepository(k.ENCOUNTERS).find(conn, program_id, answers.encounter_id)
        if session is None or session.participant_id != participant_id:
            raise RuleViolation("encounter_id names no session of this participant")


async def _insert(conn: AsyncConnection, program_id: str, content: dict[str, Any], at: datetime) -> Assessment:
    record = await REPOSITORY.insert(conn, program_id, content, at)
    await record_changed(conn, program_id, k.ASSESSMENTS.name, record, at)
    return record


async def create(
    conn: AsyncConnection, program_id: str, fields: AssessmentFields, registry: Registry, now: datetime
) -> Assessment:
    instrument = registry.get(fields.instrument, fields.instrument_version)
    if await RecordRepository(k.PARTICIPANTS).find(conn, program_id, fields.participant_id) is None:
        raise RuleViolation("participant_id names no participant in this program")
    await _check_circumstances(conn, program_id, fields.participant_id, fields)
    scored = rules.score(instrument, fields.answered)
    content = {
        **fields.model_dump(mode="json"),
        "instrument_version": instrument.version,
        **scored.model_dump(mode="json"),
    }
    return await _insert(conn, program_id, content, now)


async def amend(
    conn: AsyncConnection,
    program_id: str,
    assessment_id: str,
    correction: AssessmentAnswers,
    registry: Registry,
    *,
    expected_version: int | None,
    now: datetime,
) -> Assessment:
    """A recorded assessment is never edited: the correction is a new one that points at it, scored
    with the same instrument version. ``expected_version`` is the corrected record's, as read."""
    original = await REPOSITORY.get(conn, program_id, assessment_id)
    if expected_version is not None and expected_version != original.version:
        raise PreconditionFailed(
            f"the assessment is at version {original.version}, not {expected_version}; read it again"
        )
    corrections = await REPOSITORY.list(conn, program_id, equals={"amends_id": original.id}, limit=1)
    state = rules.amendment_state(original, superseded=bool(corrections.items))
    instrument = registry.get(original.instrument, original.instrument_version)
    await _check_circumstances(conn, program_id, original.participant_id, correction)
    scored = rules.score(instrument, correction.answered)
    content = {
        "participant_id": original.participant_id,
        "instrument": original.instrument,
        "instrument_version": original.instrument_version,
        **correction.model_dump(mode="json"),
        **scored.model_dump(mode="json"),
        **state.model_dump(mode="json"),
    }
    return await _insert(conn, program_id, content, now)


@dataclass(frozen=True)
class Point:
    assessment: Assessment
    change: Change


@dataclass(frozen=True)
class Series:
    instrument: Instrument
    points: list[Point]


def series(assessments: list[Assessment], registry: Registry) -> list[Series]:
    """One series per instrument (the standing assessments, oldest first); the first is the baseline."""
    found: list[Series] = []
    standing = rules.current(assessments)
    for instrument_id in sorted({a.instrument for a in standing}):
        items = [a for a in standing if a.instrument == instrument_id]
        instrument = registry.get(instrument_id, items[-1].instrument_version)
        baseline = items[0].total
        points = [Point(a, rules.change(instrument, baseline, a.total, i == 0)) for i, a in enumerate(items)]
        found.append(Series(instrument, points))
    return found


async def outcomes(conn: AsyncConnection, program_id: str, participant_id: str, registry: Registry) -> list[Series]:
    await RecordRepository(k.PARTICIPANTS).get(conn, program_id, participant_id)
    assessments: list[Assessment] = await all_records(conn, k.ASSESSMENTS, program_id, participant_id=participant_id)
    return series(assessments, registry)


@dataclass(frozen=True)
class DueAssessment:
    participant_id: str
    instrument: str
    due: Due
    last_completed_on: date | None


async def due(
    conn: AsyncConnection,
    program: Program,
    registry: Registry,
    today: date,
    *,
    horizon_days: int,
    instrument: str | None = None,
    participant_id: str | None = None,
) -> list[DueAssessment]:
    """Follow-ups due within ``horizon_days`` or overdue, per the program's schedule; intake is the
    day the participant was enrolled (the participant record's creation)."""
    schedule = registry.schedule(program.code)
    wanted = [i for i in schedule.instruments if instrument in (None, i)]
    equals = {"id": participant_id} if participant_id else {}
    participants: list[Participant] = await all_records(conn, k.PARTICIPANTS, program.id, **equals)
    found: list[DueAssessment] = []
    for participant in participants:
        records: list[Assessment] = await all_records(conn, k.ASSESSMENTS, program.id, participant_id=participant.id)
        standing = rules.current(records)
        for instrument_id in wanted:
            days = [a.completed_at.date() for a in standing if a.instrument == instrument_id]
            intake = participant.created_at.date()
            for occasion in due_occasions(schedule, intake, days, today, horizon_days):
                found.append(DueAssessment(participant.id, instrument_id, occasion, max(days, default=None)))
    return sorted(found, key=lambda d: (d.due.due_by, d.participant_id, d.instrument))
