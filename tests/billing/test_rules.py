"""Each shipped state's rules: unit counting at the boundaries, caps, prior authorization, group
limits, modifiers, places of service and the documentation a claim needs."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from service.domain.billing import PAYERS_DIR, PayerError, load_file, load_payers
from service.domain.billing.periods import months_before
from tests.billing.builders import Case, at, codes, rated, referral

DAY = date(2026, 3, 2)


def test_the_shipped_rule_sets_load_with_sources():
    registry = load_payers()
    assert registry.ids == ["default", "nc-medicaid", "nj-medicaid-sud", "tx-medicaid"]
    for rules in registry.payers.values():
        assert rules.source and rules.why and rules.units.source and rules.places.source
    assert registry.get("nc-medicaid").rate.per_unit == Decimal("11.97")


@pytest.mark.parametrize(
    ("payer", "expected"),
    [
        ("tx-medicaid", {7: 0, 8: 1, 22: 1, 23: 2, 37: 2, 38: 3}),  # 8-minute rounding
        ("nc-medicaid", {7: 0, 8: 1, 22: 1, 23: 2}),
        ("nj-medicaid-sud", {14: 0, 15: 1, 29: 1, 30: 2, 44: 2, 45: 3}),  # full 15-minute units
        ("default", {7: 0, 8: 1, 22: 1, 23: 2}),
    ],
)
def test_units_at_the_boundaries(payer, expected):
    units = load_payers().get(payer).units
    assert {minutes: units.count(minutes) for minutes in expected} == expected


def test_a_session_too_short_for_a_unit_is_blocked():
    line = Case("nj-medicaid-sud", "NJ").one(at(DAY), 14)
    assert line.units == 0
    assert "no-billable-units" in codes(line)


def test_north_carolina_ready_line_carries_what_a_claim_needs():
    line = Case("nc-medicaid", "NC").one(at(DAY), 60)
    assert line.status == "ready", line.reasons
    assert (line.procedure_code, line.modifiers, line.units, line.place_of_service) == ("H0038", [], 4, "11")
    assert line.charge == Decimal("47.88")
    assert line.diagnosis_codes == ["F33.1"]
    assert line.order_id is not None
    assert line.member_id == "M-1"
    assert [w.code for w in line.warnings] == ["supervision-not-recorded"]


def test_north_carolina_prior_approval_after_24_units_in_the_state_fiscal_year():
    case = Case("nc-medicaid", "NC")
    for week in range(7):  # 7 x 4 units
        case.add(at(DAY + timedelta(days=7 * week)), 60)
    lines = case.lines()
    assert [line.status for line in lines] == ["ready"] * 6 + ["blocked"]
    assert codes(lines[-1]) == ["prior-authorization-needed"]


def test_north_carolina_fiscal_year_restarts_in_july():
    case = Case("nc-medicaid", "NC")
    for i in range(6):
        case.add(at(date(2026, 6, 1) + timedelta(days=i)), 60)  # 24 units in June
    case.add(at(date(2026, 6, 29)), 60)
    case.add(at(date(2026, 7, 1)), 60)
    assert [line.status for line in case.lines()][-2:] == ["blocked", "ready"]


def test_north_carolina_authorization_on_file_lets_units_through_until_it_is_used_up():
    auth = {"number": "PA-9", "period": {"start": "2026-01-01", "end": "2026-06-30"}, "units": 8}
    case = Case("nc-medicaid", "NC", authorizations=[auth])
    for week in range(9):
        case.add(at(DAY + timedelta(days=7 * week)), 60)
    lines = case.lines()
    assert [line.authorization_number for line in lines[6:]] == ["PA-9", "PA-9", None]
    assert [line.status for line in lines[6:]] == ["ready", "ready", "blocked"]


def test_north_carolina_group_modifier_rate_and_limit():
    case = Case("nc-medicaid", "NC")
    line = case.one(at(DAY), 60, modality="group", group_size=12)
    assert line.status == "ready", line.reasons
    assert line.modifiers == ["HQ"]
    assert line.charge == Decimal("11.52")  # 4 x 2.88
    over = Case("nc-medicaid", "NC").one(at(DAY), 60, modality="group", group_size=13)
    assert codes(over) == ["group-over-limit"]
    unknown = Case("nc-medicaid", "NC").one(at(DAY), 60, modality="group")
    assert codes(unknown) == ["group-size-missing"]


def test_north_carolina_telehealth_modifiers_keep_the_usual_place():
    video = Case("nc-medicaid", "NC").one(at(DAY), 30, modality="video")
    phone = Case("nc-medicaid", "NC").one(at(DAY), 30, modality="phone")
    assert (video.modifiers, video.place_of_service) == (["GT"], "11")
    assert (phone.modifiers, phone.place_of_service) == (["KX"], "11")


def test_north_carolina_needs_an_order_and_a_diagnosis():
    case = Case("nc-medicaid", "NC")
    case.referrals.clear()
    line = case.one(at(DAY), 60)
    assert codes(line) == ["no-order", "missing-diagnosis"]
    case = Case("nc-medicaid", "NC")
    case.referrals[:] = [referral(case.participant, status="received")]
    assert "no-order" in codes(case.one(at(DAY), 60))


def test_texas_104_units_in_a_rolling_six_months():
    case = Case("tx-medicaid", "TX")
    start = date(2026, 1, 5)
    for i in range(27):  # 27 x 4 = 108 units, a session every 5 days (within 6 months)
        case.add(at(start + timedelta(days=5 * i)), 60)
    lines = case.lines()
    assert sum(line.units for line in lines if line.status == "ready") == 104
    assert codes(lines[-1]) == ["prior-authorization-needed"]  # medical necessity lifts the cap


def test_texas_rolling_window_frees_units_six_months_later():
    case = Case("tx-medicaid", "TX")
    case.add(at(date(2026, 1, 10)), 12 * 60)  # 48 units
    case.add(at(date(2026, 1, 11)), 12 * 60)  # 96
    case.add(at(date(2026, 7, 9)), 3 * 60)  # window 10 January - 9 July: 96 + 12 = 108, over
    case.add(at(date(2026, 7, 10)), 3 * 60)  # window 11 January - 10 July: 48 + 12 = 60
    assert [line.status for line in case.lines()] == ["ready", "ready", "blocked", "ready"]
    assert months_before(date(2026, 7, 10), 6) == date(2026, 1, 10)
    assert months_before(date(2026, 8, 31), 6) == date(2026, 2, 28)


def test_texas_group_of_twelve_telehealth_95_and_age_21():
    assert Case("tx-medicaid", "TX").one(at(DAY), 60, modality="group", group_size=12).modifiers == ["HQ"]
    assert codes(Case("tx-medicaid", "TX").one(at(DAY), 60, modality="group", group_size=13)) == ["group-over-limit"]
    video = Case("tx-medicaid", "TX").one(at(DAY), 60, modality="video")
    assert (video.modifiers, video.place_of_service) == (["95"], "10")
    young = Case("tx-medicaid", "TX")
    young.participant = young.participant.model_copy(update={"birth_date": date(2006, 1, 1)})
    assert codes(young.one(at(DAY), 60)) == ["participant-under-age"]


def test_texas_takes_only_texas_certifications_current_on_the_day():
    assert codes(Case("tx-medicaid", "NC").one(at(DAY), 60)) == ["certification-state-not-accepted"]
    case = Case("tx-medicaid", "TX")
    case.specialist = case.specialist.model_copy(
        update={"certification": case.specialist.certification.model_copy(update={"expires_on": date(2026, 3, 1)})}
    )
    line = case.one(at(DAY), 60)
    assert codes(line) == ["certification-not-current"]
    assert "2026-03-01" in line.reasons[0].message


def test_new_jersey_hf_16_units_a_day_and_a_substance_use_diagnosis():
    case = Case("nj-medicaid-sud", "NJ")
    case.referrals[:] = [referral(case.participant, code="F11.20")]
    case.add(at(DAY, 9), 3 * 60)  # 12 units
    case.add(at(DAY, 13), 60)  # 16
    case.add(at(DAY, 15), 15)  # 17: over
    case.add(at(DAY + timedelta(days=1)), 60)  # a new day
    lines = case.lines()
    assert [line.status for line in lines] == ["ready", "ready", "blocked", "ready"]
    assert lines[0].modifiers == ["HF"]
    assert codes(lines[2]) == ["cap-exceeded"]
    assert "0 left" in lines[2].reasons[0].message
    depression = Case("nj-medicaid-sud", "NJ")  # F33.1 is not a substance use disorder
    assert codes(depression.one(at(DAY), 60)) == ["diagnosis-not-covered"]


def test_new_jersey_video_is_hf_95_and_audio_only_is_not_paid():
    case = Case("nj-medicaid-sud", "NJ")
    case.referrals[:] = [referral(case.participant, code="F10.20")]
    assert case.one(at(DAY), 60, modality="video").modifiers == ["HF", "95"]
    assert "modality-not-covered" in codes(case.one(at(DAY, 14), 60, modality="phone"))


def test_every_blocking_reason_is_listed_at_once():
    case = Case("nc-medicaid", "NC")
    case.coverages.clear()
    case.referrals.clear()
    case.specialist = case.specialist.model_copy(update={"npi": None})
    case.program = case.program.model_copy(update={"npi": None})
    line = case.one(at(DAY), 60, signed=False)
    assert codes(line) == [
        "no-coverage",
        "note-unsigned",
        "rendering-npi-missing",
        "billing-npi-missing",
        "rate-unknown",
    ]
    assert line.payer is None
    assert line.rules == "default"


def test_a_blocked_session_uses_no_units():
    case = Case("nj-medicaid-sud", "NJ")
    case.referrals[:] = [referral(case.participant, code="F10.20")]
    case.add(at(DAY, 8), 4 * 60, signed=False)  # 16 units, but the note is a draft
    case.add(at(DAY, 13), 4 * 60)
    assert [line.status for line in case.lines()] == ["blocked", "ready"]


def test_a_program_file_replaces_a_shipped_one_and_a_wrong_file_fails_at_load(tmp_path: Path):
    assert rated().get("tx-medicaid").rate.per_unit == Decimal("10.00")
    wrong = tmp_path / "bad.toml"
    wrong.write_text('id = "bad"\nname = "x"\n')
    with pytest.raises(PayerError, match=r"bad\.toml is wrong"):
        load_file(wrong)
    wrong.unlink()
    (tmp_path / "other.toml").write_text((PAYERS_DIR / "nc-medicaid.toml").read_text())
    with pytest.raises(PayerError, match="is not the file's name"):
        load_payers(tmp_path)
    with pytest.raises(PayerError, match="does not exist"):
        load_payers(tmp_path / "missing")
