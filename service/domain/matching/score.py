"""One participant against every specialist: hard constraints, weighted soft factors, explanations.

Pure: the caller gathers what matching may use (:class:`Seeker`, :class:`Candidate`). A factor's
value is between 0 and 1; its points are the weight times the value; the score is the sum of points.
Explanations speak only of the specialist and of the participant being matched, and count another
participant's assignments only as taken slots.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from pydantic import BaseModel, ConfigDict, Field

from ..match_fields import LivedExperience, MeetingMode, availability_mask
from ..participant import Gender, MatchPreferences
from ..specialist import PeerSpecialist
from .config import FACTORS, Weights

ALL_MODES = frozenset(MeetingMode)
_AREA_WORDS = {
    LivedExperience.MENTAL_HEALTH: "mental-health recovery",
    LivedExperience.SUBSTANCE_USE: "recovery from substance use",
    LivedExperience.CO_OCCURRING: "co-occurring mental-health and substance use",
    LivedExperience.VETERAN: "military service (veteran)",
    LivedExperience.YOUTH: "being a youth or young adult in services",
    LivedExperience.JUSTICE_INVOLVEMENT: "the justice system",
    LivedExperience.FAMILY: "being a parent or family member",
    LivedExperience.LGBTQ: "being LGBTQ+",
}


def primary(tag: str) -> str:
    """The primary language subtag: 'es-MX' -> 'es'."""
    return tag.split("-")[0].lower()


@dataclass(frozen=True)
class Seeker:
    """The participant of a referral, as matching sees them."""

    referral_id: str
    participant_id: str
    language: str
    state: str | None
    """Where they live (the certification must be of this state); None: not known."""
    preferences: MatchPreferences | None
    derived_areas: frozenset[LivedExperience] = frozenset()
    """Areas the referral's reason codes and Conditions (and the participant's age) suggest."""
    former_specialists: frozenset[str] = frozenset()
    """Specialists who supported this participant before (sessions, earlier referrals)."""
    queue_key: tuple[int, str, str] = (0, "", "")
    """(priority rank, requested at, referral id): the order of the queue; greedy takes it in this order."""

    @property
    def wanted_areas(self) -> frozenset[LivedExperience]:
        stated = self.preferences.lived_experience if self.preferences else []
        return self.derived_areas | frozenset(stated)


@dataclass(frozen=True)
class Candidate:
    specialist: PeerSpecialist
    open_assignments: int
    """Referrals assigned to the specialist and still open (accepted or in progress)."""

    @property
    def free(self) -> int:
        return max(0, self.specialist.weekly_capacity - self.open_assignments)


@dataclass(frozen=True)
class _P:
    language: str
    others: frozenset[str]
    required: bool
    state: str | None
    modes: frozenset[MeetingMode]
    county: str | None
    wanted: frozenset[LivedExperience]
    gender: Gender | None
    ages: tuple[int | None, int | None]
    mask: int
    hours: int
    former: frozenset[str]


@dataclass(frozen=True)
class _S:
    id: str
    active: bool
    certified: bool
    expires_on: date
    state: str
    capacity: int
    free: int
    modes: frozenset[MeetingMode]
    county: str | None
    languages: frozenset[str]
    areas: frozenset[LivedExperience]
    gender: Gender | None
    age: int | None
    mask: int


def seeker_features(seeker: Seeker) -> _P:
    prefs = seeker.preferences
    mask = availability_mask(prefs.availability) if prefs else 0
    return _P(
        language=primary(seeker.language),
        others=frozenset(primary(t) for t in prefs.languages) - {primary(seeker.language)} if prefs else frozenset(),
        required=bool(prefs and prefs.language_required),
        state=seeker.state,
        modes=frozenset(prefs.modalities) if prefs and prefs.modalities else ALL_MODES,
        county=(prefs.county or "").strip().lower() or None if prefs else None,
        wanted=seeker.wanted_areas,
        gender=prefs.specialist_gender if prefs else None,
        ages=(prefs.specialist_age_min, prefs.specialist_age_max) if prefs else (None, None),
        mask=mask,
        hours=mask.bit_count(),
        former=seeker.former_specialists,
    )


def candidate_features(candidate: Candidate, today: date) -> _S:
    s = candidate.specialist
    return _S(
        id=s.id,
        active=s.active,
        certified=s.certification.is_current(today),
        expires_on=s.certification.expires_on,
        state=s.certification.state,
        capacity=s.weekly_capacity,
        free=candidate.free,
        modes=frozenset(s.modalities) if s.modalities else ALL_MODES,
        county=(s.county or "").strip().lower() or None,
        languages=frozenset(primary(t) for t in s.languages),
        areas=frozenset(s.lived_experience),
        gender=s.gender,
        age=today.year - s.birth_year if s.birth_year else None,
        mask=availability_mask(s.availability),
    )


def _modes(p: _P, s: _S) -> frozenset[MeetingMode]:
    """Ways they could meet: in person only when their counties agree (or one is not known)."""
    modes = p.modes & s.modes
    if MeetingMode.IN_PERSON in modes and p.county and s.county and p.county != s.county:
        modes -= {MeetingMode.IN_PERSON}
    return modes


def feasible(p: _P, s: _S) -> bool:
    return (
        s.active
        and s.certified
        and (p.state is None or p.state == s.state)
        and s.free > 0
        and bool(_modes(p, s))
        and (not p.required or p.language in s.languages)
    )


def violations(p: _P, s: _S) -> list[str]:
    """Why the specialist cannot take this participant (empty: they can)."""
    out: list[str] = []
    if not s.active:
        out.append("inactive")
    if not s.certified:
        out.append(f"certification not current (expires {s.expires_on.isoformat()})")
    if p.state is not None and p.state != s.state:
        out.append(f"certified in {s.state}, not in the participant's state ({p.state})")
    if s.free <= 0:
        out.append(f"no slots free ({s.capacity - s.free} of {s.capacity} taken)")
    if not _modes(p, s):
        asked = ", ".join(sorted(m.value for m in p.modes))
        out.append(f"does not meet the ways the participant can ({asked})")
    if p.required and p.language not in s.languages:
        out.append(f"does not speak '{p.language}', which the participant needs")
    return out


def values(p: _P, s: _S) -> tuple[float, ...]:
    """Each factor's value (0 to 1), in the order of FACTORS."""
    lived = len(p.wanted & s.areas) / len(p.wanted) if p.wanted else 0.0
    language = 1.0 if p.language in s.languages else (0.5 if p.others & s.languages else 0.0)
    continuity = 1.0 if s.id in p.former else 0.0
    stated = met = 0
    if p.gender is not None:
        stated += 1
        met += s.gender == p.gender
    low, high = p.ages
    if low is not None or high is not None:
        stated += 1
        met += s.age is not None and (low is None or s.age >= low) and (high is None or s.age <= high)
    preferences = met / stated if stated else 0.0
    availability = (p.mask & s.mask).bit_count() / p.hours if p.hours else 0.0
    capacity = s.free / s.capacity if s.capacity else 0.0
    return (lived, language, continuity, preferences, availability, capacity)


def total(weights: tuple[float, ...], vals: tuple[float, ...]) -> float:
    return round(sum(w * v for w, v in zip(weights, vals, strict=True)), 9)


def _words(areas: Iterable[LivedExperience]) -> str:
    return ", ".join(_AREA_WORDS[a] for a in sorted(areas))


def _texts(p: _P, s: _S, vals: tuple[float, ...]) -> list[str]:
    shared, missing = p.wanted & s.areas, p.wanted - s.areas
    if not p.wanted:
        lived = "no lived-experience area asked for or suggested by the referral"
    elif shared:
        lived = f"both have lived experience of {_words(shared)}"
        lived += f"; not of {_words(missing)}" if missing else ""
    else:
        lived = f"no shared lived experience (asked for: {_words(missing)})"
    if vals[1] == 1.0:
        language = f"speaks the participant's language ({p.language})"
    elif vals[1] > 0:
        language = f"speaks {', '.join(sorted(p.others & s.languages))}, not the participant's first language"
    else:
        language = f"does not speak the participant's language ({p.language})"
    continuity = "has supported this participant before" if vals[2] else "has not supported this participant before"
    parts = []
    if p.gender is not None:
        parts.append("gender as preferred" if s.gender == p.gender else "gender not as preferred (or not recorded)")
    if p.ages != (None, None):
        low, high = p.ages
        fits = s.age is not None and (low is None or s.age >= low) and (high is None or s.age <= high)
        wanted = f"{low if low is not None else 'any'} to {high if high is not None else 'any'}"
        parts.append(f"age {'in' if fits else 'outside (or not recorded)'} the preferred range ({wanted})")
    preferences = "; ".join(parts) or "no gender or age preference stated"
    if p.hours:
        common = (p.mask & s.mask).bit_count()
        availability = f"available {common / 2:g} of the {p.hours / 2:g} hours a week the participant asked for"
    else:
        availability = "no availability windows given"
    capacity = f"{s.free} of {s.capacity} slots free"
    return [lived, language, continuity, preferences, availability, capacity]


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class FactorExplanation(_Out):
    factor: str = Field(description="One of: " + ", ".join(FACTORS) + ".")
    weight: float
    value: float = Field(description="0 to 1.")
    points: float = Field(description="weight x value; the score is their sum.")
    text: str


class Match(_Out):
    specialist_id: str
    specialist_name: str
    rank: int
    score: float
    summary: str = Field(description="The factors that earned points, in words.")
    factors: list[FactorExplanation]


class Exclusion(_Out):
    specialist_id: str
    specialist_name: str
    reasons: list[str] = Field(description="The hard constraints the specialist does not meet.")


class Ranking(_Out):
    matches: list[Match]
    excluded: list[Exclusion]
    wanted_areas: list[LivedExperience] = Field(description="Stated by the participant or suggested by the referral.")


def explain(p: _P, s: _S, weights: Weights) -> tuple[float, list[FactorExplanation]]:
    vals = values(p, s)
    texts = _texts(p, s, vals)
    w = weights.as_tuple()
    factors = [
        FactorExplanation(
            factor=f, weight=w[i], value=round(vals[i], 4), points=round(w[i] * vals[i], 4), text=texts[i]
        )
        for i, f in enumerate(FACTORS)
    ]
    return total(w, vals), factors


def rank(seeker: Seeker, candidates: Sequence[Candidate], weights: Weights, today: date) -> Ranking:
    """Every specialist who meets the hard constraints, best first (ties: by id); the rest with why not."""
    p = seeker_features(seeker)
    scored: list[tuple[float, str, Candidate, list[FactorExplanation]]] = []
    excluded: list[Exclusion] = []
    for candidate in sorted(candidates, key=lambda c: c.specialist.id):
        s = candidate_features(candidate, today)
        name = candidate.specialist.name.text
        broken = violations(p, s)
        if broken:
            excluded.append(Exclusion(specialist_id=s.id, specialist_name=name, reasons=broken))
            continue
        score, factors = explain(p, s, weights)
        scored.append((score, s.id, candidate, factors))
    scored.sort(key=lambda item: (-item[0], item[1]))
    matches = [
        Match(
            specialist_id=sid,
            specialist_name=candidate.specialist.name.text,
            rank=i + 1,
            score=score,
            summary="; ".join(f.text for f in factors if f.points > 0) or "meets every hard constraint",
            factors=factors,
        )
        for i, (score, sid, candidate, factors) in enumerate(scored)
    ]
    return Ranking(matches=matches, excluded=excluded, wanted_areas=sorted(seeker.wanted_areas))
