"""The typed shape of an outcome instrument: items, answer options, scoring, bands, flags.

An instrument is data (one TOML file each, see ``load``); these models check it when it is read,
so a wrong file fails at start-up, never in the middle of scoring.
"""

from __future__ import annotations

from enum import StrEnum
from itertools import pairwise
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

Token = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9\-._]+$")]


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Coding(_Data):
    system: str = Field(min_length=1, description="Code system URI, e.g. http://loinc.org.")
    code: str = Field(min_length=1)
    display: str = Field(min_length=1)


class Option(_Data):
    value: int = Field(description="The points this answer scores.")
    display: str = Field(min_length=1)
    code: Coding | None = Field(default=None, description="The answer's code (a LOINC LA code when one exists).")


class Item(_Data):
    link_id: Token = Field(description="How answers name the item (Questionnaire.item.linkId).")
    text: str = Field(min_length=1)
    answers: Token = Field(description="Name of the answer list in [answer_lists].")
    code: Coding | None = None
    required: bool = True
    scored: bool = Field(default=True, description="Counts toward the total.")


class Band(_Data):
    code: Token
    display: str = Field(min_length=1)
    low: int
    high: int


class Flag(_Data):
    code: Token
    display: str = Field(min_length=1)
    item: Token = Field(description="The item whose answer raises the flag.")
    at_least: int = Field(description="Raised when the item's value is at least this.")


class Direction(StrEnum):
    HIGHER_IS_WORSE = "higher-is-worse"  # symptom scales (PHQ-9, GAD-7)
    HIGHER_IS_BETTER = "higher-is-better"  # strengths scales (BARC-10)


class ReliableChange(_Data):
    points: int = Field(ge=1, description="A change of at least this many points is reliable.")
    source: str = Field(min_length=1)


class Instrument(_Data):
    id: Token
    version: Token
    title: str = Field(min_length=1)
    url: str = Field(pattern=r"^https?://\S+$", description="Canonical URL (the Questionnaire's).")
    code: Coding | None = Field(default=None, description="The panel code (LOINC) when one exists.")
    total_code: Coding | None = Field(default=None, description="Code of the total score observation.")
    direction: Direction
    scoring: str = Field(pattern=r"^sum$", description="Only 'sum' for now: the scored items' values added.")
    answer_lists: dict[Token, list[Option]]
    items: list[Item] = Field(min_length=1)
    bands: list[Band] = Field(min_length=1)
    flags: list[Flag] = Field(default_factory=list)
    reliable_change: ReliableChange | None = None
    licence: str = Field(min_length=1)
    source: str = Field(min_length=1, description="What was verified, where, and what could not be.")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        for name, options in self.answer_lists.items():
            if not options:
                raise ValueError(f"answer list {name} is empty")
            if len({o.value for o in options}) != len(options):
                raise ValueError(f"answer list {name} repeats a value")
            codes = [o.code.code for o in options if o.code]
            if len(set(codes)) != len(codes):
                raise ValueError(f"answer list {name} repeats a code")
        links = [i.link_id for i in self.items]
        if len(set(links)) != len(links):
            raise ValueError("two items share a link_id")
        for item in self.items:
            if item.answers not in self.answer_lists:
                raise ValueError(f"item {item.link_id} names no answer list {item.answers!r}")
            if item.scored and not item.required:
                raise ValueError(f"item {item.link_id} is scored, so it must be required")
        if not self.scored_items:
            raise ValueError("no item is scored")
        self._check_bands()
        for flag in self.flags:
            values = {o.value for o in self.options(flag.item)} if flag.item in links else None
            if values is None:
                raise ValueError(f"flag {flag.code} names no item {flag.item!r}")
            if not any(v >= flag.at_least for v in values):
                raise ValueError(f"flag {flag.code} can never be raised (no answer reaches {flag.at_least})")
        return self

    def _check_bands(self) -> None:
        ordered = sorted(self.bands, key=lambda b: b.low)
        low, high = self.total_range
        if ordered[0].low != low or ordered[-1].high != high:
            raise ValueError(f"bands must cover the possible totals {low}-{high} exactly")
        for band in ordered:
            if band.high < band.low:
                raise ValueError(f"band {band.code} ends before it starts")
        for before, after in pairwise(ordered):
            if after.low != before.high + 1:
                raise ValueError(f"bands {before.code} and {after.code} leave a gap or overlap")
        if len({b.code for b in self.bands}) != len(self.bands):
            raise ValueError("two bands share a code")

    @property
    def key(self) -> tuple[str, str]:
        return (self.id, self.version)

    @property
    def scored_items(self) -> list[Item]:
        return [i for i in self.items if i.scored]

    def item(self, link_id: str) -> Item | None:
        return next((i for i in self.items if i.link_id == link_id), None)

    def options(self, link_id: str) -> list[Option]:
        item = self.item(link_id)
        return [] if item is None else self.answer_lists[item.answers]

    @property
    def total_range(self) -> tuple[int, int]:
        lists = [[o.value for o in self.answer_lists[i.answers]] for i in self.scored_items]
        return sum(min(v) for v in lists), sum(max(v) for v in lists)

    def band(self, total: int) -> Band:
        return next(b for b in self.bands if b.low <= total <= b.high)
