"""Demo outcome assessments: for each demo participant a baseline soon after intake, then a
follow-up about every 90 days up to the day of seeding, on PHQ-9 and GAD-7 (everyone) and BARC-10
(every other participant), with plausible trajectories — most improving, some mixed, a few flat or
worsening. Deterministic: the same participant index always gets the same answers and days.

Every assessment goes through ``service.records.assessments.create`` (scored in the domain, through
the change hub), as one recorded through the peer API would.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from service.domain.assessment import AdministeredBy, Answer, AssessmentFields
from service.domain.instruments import Instrument, Registry
from service.records import assessments

FOLLOW_UP_DAYS = 90
JITTER_DAYS = 7
INTAKE_DAYS_AGO = 110
"""The first participant's intake; each next one 21 days earlier (110 to 341 days before seeding),
so everyone has a baseline and at least one follow-up inside the default one-year report period."""
INTAKE_STEP_DAYS = 21


@dataclass(frozen=True)
class Course:
    """How a participant's scores move: points per follow-up, towards better (+) or worse (-)."""

    name: str
    steps: tuple[int, ...]


# Indexed by participant: 7 improving, 2 mixed, 2 flat, 1 worsening (for a real spread, not a sales pitch).
COURSES = [
    Course("improving", (4, 3, 2, 1)),
    Course("improving", (3, 3, 2, 0)),
    Course("mixed", (4, -3, 3, -1)),
    Course("improving", (6, 2, 1, 0)),
    Course("flat", (1, -1, 0, 1)),
    Course("improving", (2, 3, 3, 1)),
    Course("worsening", (-3, -2, -1, 0)),
    Course("improving", (5, 2, -1, 2)),
    Course("mixed", (-2, 4, 2, -3)),
    Course("improving", (3, 4, 1, 1)),
    Course("flat", (0, 1, -1, 0)),
    Course("improving", (4, 1, 2, 2)),
]
# Baseline as a share of the way from the best to the worst possible total, per instrument.
BASELINE_SEVERITY = {"phq-9": (0.45, 0.7), "gad-7": (0.4, 0.65), "barc-10": (0.35, 0.6)}
STEP_SCALE = {"phq-9": 1.0, "gad-7": 0.8, "barc-10": 1.6}


def intake(index: int, today: date) -> datetime:
    """When the demo participant ``index`` was enrolled (the participant record's creation)."""
    day = today - timedelta(days=INTAKE_DAYS_AGO + INTAKE_STEP_DAYS * index)
    return datetime.combine(day, time(10), tzinfo=UTC)


def occasions(enrolled: datetime, today: date, rng: random.Random) -> list[datetime]:
    """The baseline 3-10 days after intake, then about every 90 days, all before today."""
    found = [enrolled + timedelta(days=rng.randint(3, 10), hours=rng.randint(1, 6))]
    while True:
        following = found[-1] + timedelta(days=FOLLOW_UP_DAYS + rng.randint(-JITTER_DAYS, JITTER_DAYS))
        if following.date() >= today:
            return found
        found.append(following)


def answers_for(instrument: Instrument, total: int) -> list[Answer]:
    """Answers adding up to ``total`` over the scored items (flag items kept at their lowest value:
    the demo raises no safety flag); unscored required items take their first option."""
    flagged = {f.item for f in instrument.flags}
    values: dict[str, int] = {}
    room: dict[str, list[int]] = {}
    for item in instrument.items:
        options = sorted(o.value for o in instrument.answer_lists[item.answers])
        if item.scored or item.required:
            values[item.link_id] = options[0]
        if item.scored and item.link_id not in flagged:
            room[item.link_id] = options
    left = total - sum(values[i.link_id] for i in instrument.scored_items)
    while left > 0 and room:
        for link_id, options in list(room.items()):
            if left == 0:
                break
            if values[link_id] < options[-1]:
                values[link_id] += 1
                left -= 1
            else:
                del room[link_id]
    return [Answer(link_id=link_id, value=value) for link_id, value in values.items()]


def totals(instrument: Instrument, course: Course, count: int, rng: random.Random) -> list[int]:
    """Totals over ``count`` occasions: a baseline, then the course's steps (scaled), kept in range."""
    low, high = instrument.total_range
    flag_room = sum(max(o.value for o in instrument.options(f.item)) for f in instrument.flags)
    high -= flag_room  # the flag items stay at their lowest
    worst_first = instrument.direction.value == "higher-is-worse"
    share_low, share_high = BASELINE_SEVERITY.get(instrument.id, (0.4, 0.6))
    severity = rng.uniform(share_low, share_high)
    baseline = round(low + severity * (high - low)) if worst_first else round(high - severity * (high - low))
    found = [baseline]
    for step in course.steps[: count - 1]:
        moved = round(step * STEP_SCALE.get(instrument.id, 1.0)) + rng.choice((-1, 0, 0, 1))
        better = -moved if worst_first else moved
        found.append(min(max(found[-1] + better, low), high))
    return found


async def seed_assessments(
    conn: AsyncConnection,
    program_id: str,
    registry: Registry,
    people: list[tuple[str, str]],
    today: date,
) -> int:
    """Assessments over time for ``people`` (participant id, their peer specialist's id), in the
    order they were seeded; returns how many were recorded."""
    recorded = 0
    for index, (participant_id, specialist_id) in enumerate(people):
        course = COURSES[index % len(COURSES)]
        wanted = ["phq-9", "gad-7"] + (["barc-10"] if index % 2 == 1 else [])
        for instrument_id in wanted:
            instrument = registry.get(instrument_id)
            rng = random.Random(f"peerlink-demo-outcomes/{index}/{instrument_id}")  # noqa: S311 (demo data, not secrets)
            days = occasions(intake(index, today), today, rng)
            scores = totals(instrument, course, len(days), rng)
            for n, (completed_at, total) in enumerate(zip(days, scores, strict=True)):
                by_peer = n % 3 != 2  # every third follow-up is self-administered
                fields = AssessmentFields(
                    participant_id=participant_id,
                    instrument=instrument.id,
                    instrument_version=instrument.version,
                    answers=answers_for(instrument, total),
                    administered_by=AdministeredBy.PEER_SPECIALIST if by_peer else AdministeredBy.PARTICIPANT,
                    specialist_id=specialist_id if by_peer else None,
                    completed_at=completed_at,
                )
                await assessments.create(conn, program_id, fields, registry, completed_at)
                recorded += 1
    return recorded
