"""Instrument files: the shipped ones carry the published codes; a wrong file fails loudly at load."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from service.domain.instruments import HERE, InstrumentError, load_file, load_registry
from service.settings import Settings

PHQ9_ITEMS = ["44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3", "44260-8"]
GAD7_ITEMS = ["69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7"]
FREQUENCY = [("LA6568-5", 0), ("LA6569-3", 1), ("LA6570-1", 2), ("LA6571-9", 3)]


def test_phq9_codes_answers_and_bands():
    phq9 = load_registry().get("phq-9")
    assert phq9.code and phq9.code.code == "44249-1" and phq9.total_code and phq9.total_code.code == "44261-6"
    assert [i.code.code for i in phq9.scored_items if i.code] == PHQ9_ITEMS
    assert [(i.link_id, i.scored, i.required) for i in phq9.items if not i.scored] == [("69722-7", False, False)]
    assert [(o.code.code, o.value) for o in phq9.options("44250-9") if o.code] == FREQUENCY
    assert [(b.low, b.high) for b in phq9.bands] == [(0, 4), (5, 9), (10, 14), (15, 19), (20, 27)]
    assert [(f.item, f.at_least) for f in phq9.flags] == [("44260-8", 1)]
    assert phq9.reliable_change and phq9.reliable_change.points == 6
    assert "no permission required" in phq9.licence.lower().replace("\n", " ")


def test_gad7_and_barc10():
    registry = load_registry()
    gad7, barc = registry.get("gad-7"), registry.get("barc-10")
    assert gad7.code and gad7.code.code == "69737-5" and gad7.total_code and gad7.total_code.code == "70274-6"
    assert [i.code.code for i in gad7.items if i.code] == GAD7_ITEMS
    assert [b.low for b in gad7.bands] == [0, 5, 10, 15]
    assert len(barc.items) == 10 and {o.value for o in barc.options("barc-10-1")} == set(range(1, 7))
    systems = {i.code.system for i in barc.items if i.code} | {barc.url.rsplit("/Questionnaire/", 1)[0]}
    assert all(s.startswith("https://peerlink.example.org/fhir") for s in systems)
    assert barc.reliable_change is None and "UNVERIFIED" in barc.licence


def _copy(tmp_path: Path, edit) -> Path:
    text = (HERE / "gad-7.toml").read_text()
    path = tmp_path / "mine.toml"
    path.write_text(edit(text))
    return path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace('answers = "frequency"', 'answers = "nope"', 1), "names no answer list"),
        (lambda t: t.replace("low = 5\n", "low = 6\n", 1), "gap or overlap"),
        (lambda t: t.replace("high = 21", "high = 20"), "cover the possible totals 0-21"),
        (lambda t: t.replace('scoring = "sum"', 'scoring = "mean"'), "scoring"),
        (lambda t: t.replace('code = "LA6569-3"', 'code = "LA6568-5"', 1), "repeats a code"),
        (lambda t: t.replace("value = 1\n", "value = 0\n", 1), "repeats a value"),
        (lambda t: t + '\n[[flags]]\ncode = "x"\ndisplay = "x"\nitem = "69725-0"\nat_least = 9\n', "never be raised"),
        (lambda t: t + "\nsurprise = 1\n", "surprise"),
        (lambda t: t.replace('title = "', "title = ", 1), "cannot be read"),
    ],
)
def test_a_malformed_instrument_file_fails_loudly_naming_it(tmp_path, edit, message):
    with pytest.raises(InstrumentError, match=message) as caught:
        load_file(_copy(tmp_path, edit))
    assert "mine.toml" in str(caught.value)


def test_a_program_adds_its_own_instrument_and_schedule(tmp_path):
    shutil.copy(HERE / "gad-7.toml", tmp_path / "gad-7-v2.toml")
    text = (tmp_path / "gad-7-v2.toml").read_text().replace('version = "1.0.0"', 'version = "1.10.0"')
    (tmp_path / "gad-7-v2.toml").write_text(text)
    (tmp_path / "schedule-north.toml").write_text(
        'instruments = ["gad-7"]\nbaseline_within_days = 14\nrepeat_every_days = 60\n'
        'window_days = 14\nsource = "ours"\n'
    )
    registry = load_registry(tmp_path)
    assert registry.get("gad-7").version == "1.10.0" and registry.get("gad-7", "1.0.0").version == "1.0.0"
    assert registry.schedule("north").repeat_every_days == 60 and registry.schedule("demo").repeat_every_days == 90


def test_a_clash_an_unknown_schedule_instrument_or_a_missing_folder_fails(tmp_path):
    shutil.copy(HERE / "gad-7.toml", tmp_path / "copy.toml")
    with pytest.raises(InstrumentError, match="defined twice"):
        load_registry(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    (other / "schedule-x.toml").write_text(
        'instruments = ["k10"]\nbaseline_within_days = 1\nrepeat_every_days = 1\nwindow_days = 1\nsource = "s"\n'
    )
    with pytest.raises(InstrumentError, match="names no instrument k10"):
        load_registry(other)
    with pytest.raises(InstrumentError, match="does not exist"):
        load_registry(tmp_path / "absent")


def test_the_gateway_refuses_to_start_with_a_wrong_instrument(tmp_path):
    from service.app import create_app

    (tmp_path / "bad.toml").write_text('id = "x"\n')
    with pytest.raises(InstrumentError, match=r"bad\.toml"):
        create_app(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/x.db", instruments_dir=tmp_path))
