"""The matching data files: the shipped ones load, a wrong one is refused at start, a program's own
weights replace the defaults for that program only."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.domain.match_fields import LivedExperience
from service.domain.matching.config import FACTORS, ICD10CM, SNOMED, MatchingConfigError, load_config

WEIGHTS = """source = "test"
why = "test"
[weights]
lived_experience = 1.0
language = 1.0
continuity = 1.0
preferences = 1.0
availability = 1.0
capacity = {capacity}
"""


def test_the_shipped_files_load_with_a_source_and_why_for_every_rule():
    config = load_config()
    assert set(config.weights.model_dump()) == set(FACTORS)
    assert all(rule.source and rule.why for rule in config.areas.rule)
    unverified = [rule for rule in config.areas.rule if rule.source.startswith("NOT verified")]
    assert unverified, "the table says which codes could not be verified"


@pytest.mark.parametrize(
    ("system", "code", "areas"),
    [
        (ICD10CM, "F11.20", {LivedExperience.SUBSTANCE_USE}),
        (ICD10CM, "f10.10", {LivedExperience.SUBSTANCE_USE}),
        (ICD10CM, "F33.1", {LivedExperience.MENTAL_HEALTH}),
        (ICD10CM, "Z65.1", {LivedExperience.JUSTICE_INVOLVEMENT}),
        (ICD10CM, "Z56.82", {LivedExperience.VETERAN}),
        (ICD10CM, "F17.210", set()),  # nicotine is left out on purpose
        (SNOMED, "5602001", {LivedExperience.SUBSTANCE_USE}),
        (SNOMED, "F11.20", set()),  # an ICD-10-CM code under another system matches nothing
        (None, "F11.20", set()),
    ],
)
def test_reason_codes_map_to_areas(system, code, areas):
    assert load_config().areas_of_code(system, code) == areas


def test_a_programs_weights_replace_the_defaults_for_that_program_only(tmp_path: Path):
    (tmp_path / "weights-riverside.toml").write_text(WEIGHTS.format(capacity=9.0))
    config = load_config(tmp_path)
    assert config.weights_for("riverside").capacity == 9.0
    assert config.weights_for("demo") == load_config().weights


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("weights.toml", WEIGHTS.format(capacity=-1), "greater than or equal to 0"),
        ("weights.toml", WEIGHTS.format(capacity=1) + "distance = 2\n", "Extra inputs"),
        ("weights-demo.toml", WEIGHTS.format(capacity=1).replace("capacity = 1\n", ""), "capacity"),
        ("weights.toml", "not toml [", "weights.toml"),
        (
            "areas.toml",
            'source = "s"\nwhy = "w"\n[derived]\nco_occurring_when = ["mental-health", "substance-use"]\n'
            'youth_max_age = 25\nsource = "s"\nwhy = "w"\n[[rule]]\nsystem = "http://snomed.info/sct"\n'
            'prefix = "F11"\narea = "substance-use"\ndisplay = "d"\nsource = "s"\nwhy = "w"\n',
            "prefix rules are for ICD-10-CM",
        ),
    ],
)
def test_a_wrong_file_is_refused_naming_it(tmp_path: Path, name, text, message):
    (tmp_path / name).write_text(text)
    with pytest.raises(MatchingConfigError, match=message):
        load_config(tmp_path)


def test_a_missing_folder_is_refused(tmp_path: Path):
    with pytest.raises(MatchingConfigError, match="not a folder"):
        load_config(tmp_path / "nowhere")
