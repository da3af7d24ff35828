"""A program's own payer file: the rule kinds the shipped states do not use (per-session units,
an episode cap, credential modifiers, places allowed, too many modifiers), and the gateway refusing
to start with a wrong file."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from service.app import create_app
from service.domain.billing import PayerError, load_payers
from service.domain.billing.readiness import assess
from service.settings import Settings
from tests.billing.builders import Case, at, codes, referral

PLAN = """
id = "acme-plan"
name = "ACME managed care (a program's contract)"
effective = "2026-01-01"
procedure_code = "H0038"
procedure_modifiers = ["U1", "HF"]
source = "The program's contract with ACME (test data)."
why = "Exercises the rule kinds."

[units]
method = "per-session"
min_minutes = 30
source = "contract"
why = "ACME pays a session rate."

[[caps]]
kind = "episode"
units = 2
source = "contract"
why = "Two sessions per order."

[group]
modifiers = ["HQ"]
source = "contract"
why = "groups"

[places]
source = "contract"
why = "places"
in_person = { allowed = true, place_of_service = "53", places_allowed = ["53", "11"] }
video = { allowed = true, modifiers = ["GT"], place_of_service = "02" }
audio = { allowed = false }

[credentials]
source = "contract"
why = "credential modifier"
modifiers = { certified-peer-specialist = ["HM"] }

[documentation]
order = true
source = "contract"
why = "docs"

[rate]
per_unit = "55.00"
source = "contract"
why = "session rate"
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "acme-plan.toml").write_text(PLAN)
    return tmp_path


def _lines(case: Case, folder: Path):
    return assess(case.facts, load_payers(folder), case.program)


def test_per_session_units_episode_cap_and_modifiers_in_order(folder: Path):
    case = Case("acme-plan", "OR")
    first = case.referrals[0]
    for i in range(3):
        case.add(at(date(2026, 3, 2) + timedelta(days=i)), 50)
    case.add(at(date(2026, 3, 9)), 29)  # too short for the session unit
    lines = _lines(case, folder)
    assert [line.units for line in lines] == [1, 1, 1, 0]
    assert [line.status for line in lines[:3]] == ["ready", "ready", "blocked"]
    assert codes(lines[2]) == ["cap-exceeded"]
    assert lines[0].modifiers == ["U1", "HF", "HM"]
    assert (lines[0].place_of_service, lines[0].charge) == ("53", 55)
    assert codes(lines[3]) == ["no-billable-units"]
    # a new order opens a new episode
    case.referrals.append(referral(case.participant, on=date(2026, 3, 20)))
    case.add(at(date(2026, 3, 21)), 50)
    last = _lines(case, folder)[-1]
    assert (last.status, last.order_id) == ("ready", case.referrals[1].id)
    assert last.order_id != first.id


def test_places_allowed_and_too_many_modifiers(folder: Path):
    case = Case("acme-plan", "OR")
    case.add(at(date(2026, 3, 2)), 50, place_of_service="12")
    case.add(at(date(2026, 3, 3)), 50, modality="video", group_size=3)
    lines = _lines(case, folder)
    assert codes(lines[0]) == ["place-of-service-not-allowed"]
    assert lines[1].modifiers == ["U1", "HF", "HQ", "HM", "GT"]
    assert codes(lines[1]) == ["too-many-modifiers"]


def test_the_gateway_does_not_start_with_a_wrong_payer_file(tmp_path: Path, folder: Path):
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    (wrong / "broken.toml").write_text('id = "broken"\nprocedure_code = "H0038"\n')
    settings = Settings(database_url="sqlite+aiosqlite:///:memory:", payers_dir=wrong)
    with pytest.raises(PayerError, match="broken"):
        create_app(settings)
    app = create_app(Settings(database_url="sqlite+aiosqlite:///:memory:", payers_dir=folder))
    assert "acme-plan" in app.state.payers.ids
