"""Plain facts for the report's pure functions: assessments built as the records layer stores them."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from itertools import count

from service.domain.assessment import Assessment
from service.domain.instruments import load_registry
from service.reports.compute import Enrolment, Facts, Period, Session

PERIOD = Period(date(2026, 1, 1), date(2026, 12, 31))
PHQ9_ITEMS = ["44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3", "44260-8"]
_ids = count(1)
REGISTRY = load_registry()


def phq9(participant: str, day: date, total: int, amends: str | None = None) -> Assessment:
    """A PHQ-9 with the given total (item 9 kept at 0), as stored."""
    values = [0] * 9
    left = total
    for i in range(8):
        values[i] = min(3, left)
        left -= values[i]
    assert left == 0
    moment = datetime.combine(day, time(12), tzinfo=UTC)
    return Assessment.model_validate(
        {
            "id": f"a{next(_ids)}",
            "version": 1,
            "created_at": moment,
            "updated_at": moment,
            "program_id": "p1",
            "participant_id": participant,
            "instrument": "phq-9",
            "instrument_version": "1.0.0",
            "answers": [{"link_id": link, "value": v} for link, v in zip(PHQ9_ITEMS, values, strict=True)],
            "administered_by": "participant",
            "completed_at": moment,
            "total": total,
            "band": "x",
            "band_display": "x",
            "status": "amended" if amends else "final",
            "amends_id": amends,
        }
    )


def people(n: int, intake: date = date(2026, 2, 1)) -> list[Enrolment]:
    return [Enrolment(f"p{i:02d}", intake) for i in range(n)]


def sessions_for(
    enrolments: list[Enrolment], day: date, modality: str = "video", specialist: str = "s1"
) -> list[Session]:
    return [Session(e.participant_id, specialist, modality, day) for e in enrolments]


def facts(enrolments: list[Enrolment], sessions: list[Session], assessments: list[Assessment]) -> Facts:
    return Facts(PERIOD, enrolments, sessions, assessments, {"s1": "Alex Rivera", "s2": "Sam Nguyen"})
