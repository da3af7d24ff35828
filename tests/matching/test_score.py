"""Scoring one participant against specialists: each hard constraint excludes with its reason, the
soft factors add up to the score, and the explanation says why in words."""

from __future__ import annotations

from datetime import timedelta

from service.domain.match_fields import LivedExperience
from service.domain.matching.config import FACTORS, load_config
from service.domain.matching.score import rank
from tests.matching.synthetic import TODAY, peer, person

WEIGHTS = load_config().weights


def test_the_best_match_explains_itself_in_words():
    seeker = person(
        language="es",
        preferences={"lived_experience": ["substance-use"], "specialist_gender": "female"},
        derived_areas=frozenset({LivedExperience.SUBSTANCE_USE}),
    )
    good = peer("ana", 7, lived_experience=["substance-use"], languages=["es", "en"], gender="female")
    plain = peer("bob", 0, lived_experience=["veteran"])
    ranking = rank(seeker, [plain, good], WEIGHTS, TODAY)
    assert [m.specialist_id for m in ranking.matches] == ["ana", "bob"]
    top = ranking.matches[0]
    assert [f.factor for f in top.factors] == list(FACTORS)
    assert top.score == round(sum(f.points for f in top.factors), 6)
    assert "both have lived experience of recovery from substance use" in top.summary
    assert "speaks the participant's language (es)" in top.summary
    assert "gender as preferred" in top.summary
    assert "3 of 10 slots free" in top.summary
    assert "has supported" not in top.summary  # a factor with no points is not in the summary
    second = ranking.matches[1]
    assert "no shared lived experience (asked for: recovery from substance use)" in second.factors[0].text
    assert second.factors[1].text == "does not speak the participant's language (es)"


def test_each_hard_constraint_excludes_with_its_reason():
    seeker = person(
        language="vi", preferences={"language_required": True, "modalities": ["in-person"], "county": "lane"}
    )
    expired = {
        "state": "OR",
        "number": "1",
        "issued_on": TODAY - timedelta(days=900),
        "expires_on": TODAY - timedelta(days=1),
    }
    washington = {
        "state": "WA",
        "number": "1",
        "issued_on": TODAY - timedelta(days=9),
        "expires_on": TODAY + timedelta(days=9),
    }
    cases = {
        "inactive": peer("a1", languages=["vi"], active=False),
        "certification not current": peer("a2", languages=["vi"], certification=expired),
        "certified in WA": peer("a3", languages=["vi"], certification=washington),
        "no slots free (10 of 10 taken)": peer("a4", 10, languages=["vi"]),
        "does not meet the ways": peer("a5", languages=["vi"], modalities=["video", "phone"]),
        "does not meet the ways the participant can (in-person)": peer("a6", languages=["vi"], county="marion"),
        "does not speak 'vi'": peer("a7"),
    }
    fits = peer("ok", languages=["vi"], county="Lane")
    ranking = rank(seeker, [*cases.values(), fits], WEIGHTS, TODAY)
    assert [m.specialist_id for m in ranking.matches] == ["ok"]
    reasons = {e.specialist_id: " ".join(e.reasons) for e in ranking.excluded}
    for expected, candidate in cases.items():
        assert expected in reasons[candidate.specialist.id]


def test_no_preferences_and_old_records_still_match():
    """A participant without match preferences and a specialist without the new fields: only the
    derived areas, the language and capacity count."""
    ranking = rank(person(), [peer("old")], WEIGHTS, TODAY)
    (match,) = ranking.matches
    assert match.factors[0].text == "no lived-experience area asked for or suggested by the referral"
    assert match.score == WEIGHTS.language + WEIGHTS.capacity


def test_continuity_availability_and_age():
    seeker = person(
        preferences={
            "specialist_age_min": 30,
            "specialist_age_max": 45,
            "availability": [{"day": "mon", "start": "09:00", "end": "12:00"}],
        },
        former_specialists=frozenset({"kim"}),
    )
    kim = peer("kim", birth_year=TODAY.year - 40, availability=[{"day": "mon", "start": "10:00", "end": "11:30"}])
    lee = peer("lee", birth_year=TODAY.year - 60)
    by_id = {m.specialist_id: m for m in rank(seeker, [kim, lee], WEIGHTS, TODAY).matches}
    texts = [f.text for f in by_id["kim"].factors]
    assert "has supported this participant before" in texts
    assert "age in the preferred range (30 to 45)" in texts
    assert "available 1.5 of the 3 hours a week the participant asked for" in texts
    assert by_id["kim"].factors[4].value == 0.5
    assert "age outside (or not recorded) the preferred range (30 to 45)" in [f.text for f in by_id["lee"].factors]


def test_an_explanation_speaks_of_no_other_participant():
    """Another participant's assignment shows only as a taken slot: the text is the same whoever holds it."""
    seeker = person(preferences={"lived_experience": ["veteran"]})
    ranking = rank(seeker, [peer("vet", 4, lived_experience=["veteran"])], WEIGHTS, TODAY)
    text = " ".join(f.text for f in ranking.matches[0].factors)
    assert "6 of 10 slots free" in text
    assert "pt-" not in text and "r1" not in text
