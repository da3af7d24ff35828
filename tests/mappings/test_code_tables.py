"""Terminology lives in mappings/codes/ as data; the tables are checked when loaded."""

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from mappings import codes
from mappings.codes import Code, CodeTableError
from mappings.profiles import OverlayError, load_overlay, names

MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"
URI = re.compile(r"""["'](https?://|urn:(oid|uuid|ietf))""")


def test_no_system_uri_literal_in_mapping_code():
    offenders = []
    for path in MAPPINGS.rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if URI.search(line):
                offenders.append(f"{path.relative_to(MAPPINGS)}:{number}: {line.strip()}")
    assert offenders == []


def test_every_code_is_complete_and_no_code_is_listed_twice_with_different_displays():
    seen: dict[tuple[str, str], tuple[str, str]] = {}
    entries = codes.all_codes()
    assert len(entries) >= 3
    for where, code in entries:
        assert code.source, f"{where}: say where the code comes from"
        key = (code.system, code.code)
        if key in seen:
            assert seen[key][1] == code.display, f"{where} and {seen[key][0]} disagree on {key}"
        seen[key] = (where, code.display)


def test_unknown_system_is_refused(tmp_path, monkeypatch):
    (tmp_path / "systems.toml").write_text('[systems]\nsnomed = "http://snomed.info/sct"\n')
    (tmp_path / "bad.toml").write_text('[entry]\nsystem = "nope"\ncode = "1"\ndisplay = "x"\n')
    monkeypatch.setattr(codes, "HERE", tmp_path)
    codes.systems.cache_clear()
    try:

        class Table(BaseModel):
            entry: Code

        with pytest.raises(CodeTableError, match="unknown system 'nope'"):
            codes.load("bad", Table)
    finally:
        codes.systems.cache_clear()


def test_missing_or_unknown_entries_are_refused(tmp_path, monkeypatch):
    (tmp_path / "systems.toml").write_text('[systems]\nsnomed = "http://snomed.info/sct"\n')
    (tmp_path / "t.toml").write_text('[other]\nsystem = "snomed"\ncode = "1"\ndisplay = "x"\n')
    monkeypatch.setattr(codes, "HERE", tmp_path)
    codes.systems.cache_clear()
    try:

        class Table(BaseModel, extra="forbid"):
            entry: Code

        with pytest.raises(CodeTableError, match="entry"):
            codes.load("t", Table)
    finally:
        codes.systems.cache_clear()


def test_one_system_key_with_two_uris_is_refused(tmp_path, monkeypatch):
    (tmp_path / "a.toml").write_text('[systems]\nx = "http://a.example.org"\n')
    (tmp_path / "b.toml").write_text('[systems]\nx = "http://b.example.org"\n')
    monkeypatch.setattr(codes, "HERE", tmp_path)
    codes.systems.cache_clear()
    try:
        with pytest.raises(CodeTableError, match="two URIs"):
            codes.systems()
    finally:
        codes.systems.cache_clear()


def test_overlays_load_and_unknown_overlay_is_refused():
    assert {"generic", "epic", "oracle"} <= set(names())
    for name in names():
        assert load_overlay(name).name == name
    with pytest.raises(OverlayError, match="no overlay"):
        load_overlay("cerner-classic")
