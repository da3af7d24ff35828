"""Billing peer support: payer rules as data and claim readiness (pure, no I/O).

The shipped rule sets live in ``payers/`` (one TOML file per payer or state plan); a program adds
its own with files of the same shape in the folder named by ``PEERLINK_PAYERS_DIR``; a program file
named like a shipped one replaces it (e.g. to set the contracted rate). ``load_payers`` reads them
all at start-up: a malformed file, or one whose id is not its file name, fails loudly with the
file's name.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from service.domain.errors import RuleViolation

from .rules import PayerRules, UnitMethod

PAYERS_DIR = Path(__file__).parent / "payers"
DEFAULT_PAYER = "default"

__all__ = ["DEFAULT_PAYER", "PayerError", "PayerRegistry", "PayerRules", "UnitMethod", "load_file", "load_payers"]


class PayerError(ValueError):
    """A payer rules file is wrong (the message names the file and the problem)."""


def load_file(path: Path) -> PayerRules:
    try:
        with path.open("rb") as handle:
            data: dict[str, Any] = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PayerError(f"{path.name} cannot be read: {exc}") from None
    try:
        rules = PayerRules.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(file)'}: {e['msg']}" for e in exc.errors())
        raise PayerError(f"{path.name} is wrong: {problems}") from None
    if path.stem != rules.id:
        raise PayerError(f"{path.name} is wrong: its id {rules.id!r} is not the file's name")
    return rules


@dataclass(frozen=True)
class PayerRegistry:
    payers: dict[str, PayerRules]

    def get(self, payer_id: str) -> PayerRules:
        found = self.payers.get(payer_id)
        if found is None:
            raise RuleViolation(f"no payer rules named {payer_id!r}; known: {', '.join(self.ids)}")
        return found

    @property
    def ids(self) -> list[str]:
        return sorted(self.payers)


@cache
def load_payers(extra_dir: Path | None = None) -> PayerRegistry:
    """The shipped rule sets, then a program's own folder (same id: the program's file wins); raises
    PayerError when any file is wrong."""
    if extra_dir is not None and not extra_dir.is_dir():
        raise PayerError(f"the payers folder {extra_dir} does not exist")
    payers: dict[str, PayerRules] = {}
    for folder in [PAYERS_DIR] + ([extra_dir] if extra_dir is not None else []):
        for path in sorted(folder.glob("*.toml")):
            rules = load_file(path)
            payers[rules.id] = rules
    if DEFAULT_PAYER not in payers:
        raise PayerError(f"no {DEFAULT_PAYER}.toml: the generic rule set is missing")
    return PayerRegistry(payers)
