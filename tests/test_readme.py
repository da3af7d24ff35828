"""The README stays true: its first commands, and every setting the code reads."""

from pathlib import Path

from service.settings import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_starts_with_the_two_commands():
    first_block = README.split("```")[1]
    assert "make run" in first_block
    assert "make test" in first_block


def test_every_setting_is_documented():
    missing = [
        f"PEERLINK_{name.upper()}" for name in Settings.model_fields if f"`PEERLINK_{name.upper()}`" not in README
    ]
    assert missing == []
