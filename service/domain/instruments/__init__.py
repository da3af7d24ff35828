"""Outcome instruments as data: one TOML file per instrument, read into typed models and checked.

The shipped instruments live beside this file (``phq-9.toml``, ``gad-7.toml``, ``barc-10.toml``); a
program adds its own by putting files of the same shape in a folder named by
``PEERLINK_INSTRUMENTS_DIR``. ``load_registry`` reads them all at start-up: a malformed file, an
unknown answer list, bands with a gap, a second file claiming a shipped id and version — each fails
loudly with the file's name. The follow-up schedule (``schedule.toml``) is data of the same kind; a
program overrides it with ``schedule-<program code>.toml`` in that folder.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from service.domain.errors import RuleViolation

from .model import Band, Coding, Direction, Flag, Instrument, Item, Option, ReliableChange
from .schedule import Schedule

HERE = Path(__file__).parent
SCHEDULE_FILE = "schedule.toml"

M = TypeVar("M", bound=BaseModel)

__all__ = [
    "Band",
    "Coding",
    "Direction",
    "Flag",
    "Instrument",
    "InstrumentError",
    "Item",
    "Option",
    "Registry",
    "ReliableChange",
    "Schedule",
    "load_file",
    "load_registry",
]


class InstrumentError(ValueError):
    """An instrument or schedule file is wrong (the message names the file and the problem)."""


def _read(path: Path, model: type[M]) -> M:
    try:
        with path.open("rb") as handle:
            data: dict[str, Any] = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InstrumentError(f"{path.name} cannot be read: {exc}") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(file)'}: {e['msg']}" for e in exc.errors())
        raise InstrumentError(f"{path.name} is wrong: {problems}") from None


def load_file(path: Path) -> Instrument:
    return _read(path, Instrument)


def _instrument_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.toml") if not p.name.startswith("schedule"))


@dataclass(frozen=True)
class Registry:
    """Every known instrument version, and the follow-up schedules."""

    instruments: dict[tuple[str, str], Instrument]
    schedules: dict[str, Schedule]
    """'' -> the default schedule; a program code -> that program's own."""

    def get(self, instrument_id: str, version: str | None = None) -> Instrument:
        """The named version, or the newest one (highest version, compared as numbers) when None."""
        if version is not None:
            found = self.instruments.get((instrument_id, version))
            if found is None:
                raise RuleViolation(f"instrument {instrument_id} has no version {version}")
            return found
        versions = [i for (iid, _), i in self.instruments.items() if iid == instrument_id]
        if not versions:
            raise RuleViolation(f"no instrument {instrument_id}; known: {', '.join(self.ids)}")
        return max(versions, key=lambda i: _version_key(i.version))

    @property
    def ids(self) -> list[str]:
        return sorted({iid for iid, _ in self.instruments})

    def schedule(self, program_code: str) -> Schedule:
        return self.schedules.get(program_code, self.schedules[""])


def _version_key(version: str) -> tuple[tuple[int, str], ...]:
    return tuple((int(p), "") if p.isdigit() else (-1, p) for p in version.split("."))


@cache
def load_registry(extra_dir: Path | None = None) -> Registry:
    """The shipped instruments plus a program's own folder; raises InstrumentError when any is wrong."""
    folders = [HERE] + ([extra_dir] if extra_dir is not None else [])
    if extra_dir is not None and not extra_dir.is_dir():
        raise InstrumentError(f"the instruments folder {extra_dir} does not exist")
    instruments: dict[tuple[str, str], Instrument] = {}
    for folder in folders:
        for path in _instrument_files(folder):
            instrument = load_file(path)
            if instrument.key in instruments:
                raise InstrumentError(f"{path.name}: {instrument.id} version {instrument.version} is defined twice")
            instruments[instrument.key] = instrument
    schedules = {"": _read(HERE / SCHEDULE_FILE, Schedule)}
    if extra_dir is not None:
        for path in sorted(extra_dir.glob("schedule-*.toml")):
            schedules[path.stem.removeprefix("schedule-")] = _read(path, Schedule)
    for code, schedule in schedules.items():
        for iid in schedule.instruments:
            if not any(key[0] == iid for key in instruments):
                raise InstrumentError(f"the schedule {code or 'default'} names no instrument {iid}")
    return Registry(instruments, schedules)
