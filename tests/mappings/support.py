"""Shared helpers for mapping tests: a program, records with meta, golden files, hypothesis strategies."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson
from hypothesis import strategies as st
from pydantic import BaseModel

from mappings.context import MappingContext
from mappings.profiles import load_overlay
from service.domain import Program

GOLDEN = Path(__file__).parent / "golden"
STAMP = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
PROGRAM = Program(
    id="program-1",
    version=1,
    created_at=STAMP,
    updated_at=STAMP,
    code="demo",
    name="Harbor Peer Support Collective",
    identifier_system="https://peer.example.org/ids",
)
M = TypeVar("M", bound=BaseModel)


def context(overlay: str = "generic") -> MappingContext:
    return MappingContext(PROGRAM, load_overlay(overlay))


def record(model: type[M], record_id: str, **fields: Any) -> M:
    """A stored record (meta included) built through the model's validation."""
    meta = {"id": record_id, "program_id": PROGRAM.id, "version": 1, "created_at": STAMP, "updated_at": STAMP}
    return model.model_validate({**fields, **meta})


def dumps(resource: dict[str, Any]) -> bytes:
    return orjson.dumps(resource, option=orjson.OPT_INDENT_2) + b"\n"


def assert_golden(name: str, resource: dict[str, Any]) -> None:
    """Compare with tests/mappings/golden/<name>.json; PEERLINK_UPDATE_GOLDEN=1 rewrites the file."""
    path = GOLDEN / f"{name}.json"
    produced = dumps(resource)
    if os.environ.get("PEERLINK_UPDATE_GOLDEN") == "1" or not path.exists():
        path.write_bytes(produced)
    assert produced == path.read_bytes(), f"{path.name} differs (PEERLINK_UPDATE_GOLDEN=1 to accept)"


# --- hypothesis strategies for the building blocks ----------------------------------------------
safe_text = st.text(
    alphabet=st.characters(min_codepoint=65, max_codepoint=122, categories=["L"]), min_size=1, max_size=20
)
ids = st.uuids().map(str)
past_dates = st.dates(min_value=date(1920, 1, 1), max_value=date(2020, 12, 31))
names = st.builds(
    lambda family, given: {"family": family, "given": given},
    safe_text,
    st.lists(safe_text, max_size=2),
)
