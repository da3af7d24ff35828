"""Terminology as data: every code PeerLink emits lives in a TOML table beside this file.

Each concept has its own table (``encounter.toml``, ``note.toml``, ...) with a typed model in its
mapping module. ``load(name, Model)`` reads the table, resolves system short names through
``systems.toml`` (and the table's own ``[systems]``), and validates it into the model: a missing,
unknown or malformed entry fails at start-up, not in the middle of an exchange.
"""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

HERE = Path(__file__).parent
PROGRAM_PLACEHOLDER = "{program}"

M = TypeVar("M", bound=BaseModel)


class CodeTableError(ValueError):
    """A code table is wrong: unknown system, missing entry, duplicate code, bad shape."""


class Code(BaseModel):
    """One code we emit, with where it comes from and why we chose it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    system: str = Field(description="The system URI (resolved from its short name at load).")
    code: str = Field(min_length=1)
    display: str = Field(min_length=1)
    source: str | None = Field(default=None, description="Where the code was found (IG, terminology).")
    why: str | None = Field(default=None, description="Why this code was chosen.")

    def coding(self, program_system: str | None = None) -> dict[str, str]:
        system = self.system
        if PROGRAM_PLACEHOLDER in system:
            if program_system is None:
                raise CodeTableError(f"code {self.code} lives in a program-local system; give the program")
            system = system.replace(PROGRAM_PLACEHOLDER, program_system.rstrip("/"))
        return {"system": system, "code": self.code, "display": self.display}

    def concept(self, program_system: str | None = None, text: str | None = None) -> dict[str, Any]:
        concept: dict[str, Any] = {"coding": [self.coding(program_system)]}
        if text:
            concept["text"] = text
        return concept

    def matches(self, coding: dict[str, Any], program_system: str | None = None) -> bool:
        mine = self.coding(program_system) if PROGRAM_PLACEHOLDER in self.system else self.coding()
        return coding.get("system") == mine["system"] and coding.get("code") == self.code


def _read(name: str) -> dict[str, Any]:
    path = HERE / f"{name}.toml"
    if not path.exists():
        raise CodeTableError(f"no code table {path.name}")
    with path.open("rb") as handle:
        return tomllib.load(handle)


@cache
def systems() -> dict[str, str]:
    """Every system short name -> URI, across all tables; one key never names two URIs."""
    merged: dict[str, str] = {}
    for path in sorted(HERE.glob("*.toml")):
        for key, uri in _read(path.stem).get("systems", {}).items():
            if merged.get(key, uri) != uri:
                raise CodeTableError(f"system {key!r} names two URIs ({merged[key]} and {uri})")
            merged[key] = uri
    return merged


def _resolve(node: Any, known: dict[str, str], where: str) -> Any:
    """Replace ``system = "short"`` by its URI everywhere in a table."""
    if isinstance(node, dict):
        resolved = {k: _resolve(v, known, f"{where}.{k}") for k, v in node.items() if k != "systems"}
        if isinstance(resolved.get("system"), str) and "code" in resolved:
            key = resolved["system"]
            if key not in known:
                raise CodeTableError(f"{where}: unknown system {key!r} (add it to systems.toml)")
            resolved["system"] = known[key]
        return resolved
    if isinstance(node, list):
        return [_resolve(item, known, f"{where}[{i}]") for i, item in enumerate(node)]
    return node


def load(name: str, model: type[M]) -> M:
    """Load ``codes/<name>.toml`` into ``model``; any problem raises CodeTableError."""
    table = _resolve(_read(name), systems(), name)
    try:
        return model.model_validate(table)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise CodeTableError(f"code table {name}.toml is wrong: {problems}") from None


def all_codes() -> list[tuple[str, Code]]:
    """Every code entry in every table (for the duplicate check and documentation)."""
    found: list[tuple[str, Code]] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            if {"system", "code", "display"} <= node.keys():
                found.append((where, Code.model_validate(node)))
                return
            for key, value in node.items():
                walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, f"{where}[{i}]")

    for path in sorted(HERE.glob("*.toml")):
        walk(_resolve(_read(path.stem), systems(), path.stem), path.stem)
    return found
