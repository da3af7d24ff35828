"""A seeded synthetic program for matching: specialists with caseloads, a queue of referrals.

Shared by the matching tests and ``tests/bench/bench_matching.py``; the same seed gives the same program."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from service.domain.match_fields import LivedExperience, MeetingMode, Weekday
from service.domain.matching.score import Candidate, Seeker
from service.domain.participant import MatchPreferences
from service.domain.specialist import PeerSpecialist

TODAY = date(2026, 6, 1)
_AT = datetime(2026, 1, 1, tzinfo=UTC)
_COUNTIES = ["multnomah", "washington", "clackamas", "lane", "marion"]
_AREAS = list(LivedExperience)
_LANGUAGES = ["es", "vi", "ru", "so"]


def _windows(rng: random.Random, count: int) -> list[dict[str, str]]:
    out = []
    for day in rng.sample(list(Weekday), count):
        start = rng.choice([8, 9, 10, 13, 15, 17])
        out.append(
            {"day": day.value, "start": time(start).isoformat("minutes"), "end": time(start + 3).isoformat("minutes")}
        )
    return out


def specialist(rng: random.Random, index: int) -> Candidate:
    expired = rng.random() < 0.05
    issued = TODAY - timedelta(days=900 if expired else 300)
    capacity = rng.randint(3, 8)
    record = PeerSpecialist.model_validate(
        {
            "id": f"s{index:04d}",
            "version": 1,
            "created_at": _AT,
            "updated_at": _AT,
            "program_id": "p1",
            "name": {"family": f"Peer{index}", "given": ["Sam"]},
            "certification": {
                "state": "WA" if rng.random() < 0.05 else "OR",
                "number": f"PSS-{index}",
                "issued_on": issued,
                "expires_on": issued + timedelta(days=730),
            },
            "lived_experience": rng.sample(_AREAS, rng.randint(1, 3)),
            "languages": ["en", *rng.sample(_LANGUAGES, 1 if rng.random() < 0.35 else 0)],
            "weekly_capacity": capacity,
            "gender": rng.choice(["female", "male", "other"]),
            "birth_year": rng.randint(1965, 2001),
            "modalities": rng.sample(list(MeetingMode), rng.randint(1, 3)),
            "availability": _windows(rng, rng.randint(2, 5)),
            "county": rng.choice(_COUNTIES),
        }
    )
    return Candidate(record, open_assignments=rng.randint(0, capacity // 2))


def seeker(rng: random.Random, index: int, specialists: int) -> Seeker:
    language = rng.choice(["en"] * 3 + _LANGUAGES) if rng.random() < 0.9 else "en"
    preferences = None
    if rng.random() < 0.75:
        preferences = MatchPreferences.model_validate(
            {
                "consented_on": TODAY,
                "languages": ["en"] if language != "en" else [],
                "language_required": language != "en" and rng.random() < 0.3,
                "specialist_gender": rng.choice([None, None, "female", "male"]),
                "specialist_age_min": rng.choice([None, None, 25, 35]),
                "specialist_age_max": rng.choice([None, None, 50, 60]),
                "lived_experience": rng.sample(_AREAS, rng.randint(0, 2)),
                "modalities": rng.sample(list(MeetingMode), rng.randint(1, 3)) if rng.random() < 0.5 else [],
                "availability": _windows(rng, rng.randint(1, 3)) if rng.random() < 0.7 else [],
                "county": rng.choice(_COUNTIES),
            }
        )
    derived = frozenset(rng.sample(_AREAS[:3], 1)) if rng.random() < 0.6 else frozenset()
    former = frozenset({f"s{rng.randrange(specialists):04d}"}) if specialists and rng.random() < 0.1 else frozenset()
    return Seeker(
        referral_id=f"r{index:05d}",
        participant_id=f"pt{index:05d}",
        language=language,
        state="OR",
        preferences=preferences,
        derived_areas=derived,
        former_specialists=former,
        queue_key=(rng.choice([0, 0, 0, 1]), (_AT + timedelta(minutes=index)).isoformat(), f"r{index:05d}"),
    )


def program(referrals: int, specialists: int, seed: int) -> tuple[list[Seeker], list[Candidate]]:
    rng = random.Random(seed)
    candidates = [specialist(rng, i) for i in range(specialists)]
    seekers = [seeker(rng, i, specialists) for i in range(referrals)]
    return seekers, candidates


def peer(specialist_id: str, open_assignments: int = 0, **overrides: Any) -> Candidate:
    """A current OR-certified specialist speaking English, with ``overrides`` applied."""
    body: dict[str, Any] = {
        "id": specialist_id,
        "version": 1,
        "created_at": _AT,
        "updated_at": _AT,
        "program_id": "p1",
        "name": {"family": specialist_id.title(), "given": ["Sam"]},
        "certification": {
            "state": "OR",
            "number": "PSS-1",
            "issued_on": TODAY - timedelta(days=100),
            "expires_on": TODAY + timedelta(days=100),
        },
        "languages": ["en"],
        "weekly_capacity": 10,
        **overrides,
    }
    return Candidate(PeerSpecialist.model_validate(body), open_assignments)


def person(
    referral_id: str = "r1", language: str = "en", preferences: dict[str, Any] | None = None, **kw: Any
) -> Seeker:
    prefs = MatchPreferences.model_validate({"consented_on": TODAY, **preferences}) if preferences is not None else None
    return Seeker(
        referral_id=referral_id,
        participant_id=f"pt-{referral_id}",
        language=language,
        state=kw.pop("state", "OR"),
        preferences=prefs,
        queue_key=(3, "2026-01-01T00:00:00+00:00", referral_id),
        **kw,
    )
