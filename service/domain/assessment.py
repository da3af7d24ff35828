"""Outcome assessments: one administration of an instrument, scored here (pure), never edited.

A correction is an amendment — a new assessment that points at the one it corrects — as for notes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Self

from pydantic import AwareDatetime, Field, model_validator

from .common import DomainModel, RecordId, RecordMeta
from .errors import IllegalTransition, RuleViolation
from .instruments import Direction, Instrument
from .instruments.model import Token


class AdministeredBy(StrEnum):
    PEER_SPECIALIST = "peer-specialist"
    PARTICIPANT = "participant"  # self-administered (e.g. on the participant's own device)


class AssessmentStatus(StrEnum):
    FINAL = "final"
    AMENDED = "amended"  # this record corrects the one named by amends_id


class Answer(DomainModel):
    link_id: Token = Field(description="The item (the instrument's link id, e.g. the LOINC item code).")
    value: int = Field(description="The value of the chosen answer option (GET /peer/v1/instruments lists them).")


class AssessmentAnswers(DomainModel):
    """What a correction may change: the answers and the circumstances of the administration."""

    answers: list[Answer] = Field(max_length=200, description="One answer per answered item.")
    administered_by: AdministeredBy
    specialist_id: RecordId | None = Field(
        default=None, description="The peer specialist who administered it (required when administered_by is one)."
    )
    encounter_id: RecordId | None = Field(default=None, description="The session it was given in, if any.")
    completed_at: AwareDatetime

    @property
    def answered(self) -> dict[str, int]:
        """Item link id -> value."""
        return {a.link_id: a.value for a in self.answers}

    @model_validator(mode="after")
    def _administered(self) -> Self:
        links = [a.link_id for a in self.answers]
        if twice := sorted({link for link in links if links.count(link) > 1}):
            raise ValueError(f"items answered more than once: {', '.join(twice)}")
        if self.administered_by is AdministeredBy.PEER_SPECIALIST and self.specialist_id is None:
            raise ValueError("specialist_id is required when a peer specialist administered the assessment")
        return self


class AssessmentFields(AssessmentAnswers):
    participant_id: RecordId
    instrument: Token = Field(description="Instrument id, e.g. phq-9 (GET /peer/v1/instruments lists them).")
    instrument_version: Token | None = Field(default=None, description="Omit for the newest version.")


class AssessmentScore(DomainModel):
    """Computed by ``score``, stored with the record as it was scored."""

    total: int
    band: str
    band_display: str
    flags: list[str] = Field(default_factory=list)


class AssessmentState(DomainModel):
    status: AssessmentStatus = AssessmentStatus.FINAL
    amends_id: RecordId | None = None


class Assessment(AssessmentFields, AssessmentScore, AssessmentState, RecordMeta):
    instrument_version: Token  # always recorded once stored


def score(instrument: Instrument, answers: Mapping[str, int]) -> AssessmentScore:
    """Total, band and safety flags; a missing required item, an unknown item or a value that is
    not one of the item's answer options is refused, naming the item (never the value: it is PHI)."""
    for link_id in answers:
        if instrument.item(link_id) is None:
            raise RuleViolation(
                f"item {link_id} is not an item of {instrument.id}",
                errors=[
                    {"loc": ["answers", link_id], "msg": "not an item of the instrument", "type": "extra_forbidden"}
                ],
            )
    for item in instrument.items:
        value = answers.get(item.link_id)
        if value is None:
            if item.required:
                raise RuleViolation(
                    f"item {item.link_id} of {instrument.id} is required and has no answer",
                    errors=[{"loc": ["answers", item.link_id], "msg": "missing answer", "type": "missing"}],
                )
            continue
        allowed = sorted(o.value for o in instrument.answer_lists[item.answers])
        if value not in allowed:
            raise RuleViolation(
                f"item {item.link_id} of {instrument.id} takes one of {allowed}",
                errors=[{"loc": ["answers", item.link_id], "msg": "not an answer option", "type": "out_of_range"}],
            )
    total = sum(answers[i.link_id] for i in instrument.scored_items)
    band = instrument.band(total)
    flags = [f.code for f in instrument.flags if f.item in answers and answers[f.item] >= f.at_least]
    return AssessmentScore(total=total, band=band.code, band_display=band.display, flags=flags)


def amendment_state(original: Assessment, superseded: bool) -> AssessmentState:
    """A correction of ``original``; only the newest record of a chain can be corrected."""
    if superseded:
        raise IllegalTransition("this assessment was already corrected; amend the newest correction instead")
    return AssessmentState(status=AssessmentStatus.AMENDED, amends_id=original.id)


class ChangeKind(StrEnum):
    BASELINE = "baseline"
    RELIABLE_IMPROVEMENT = "reliable-improvement"
    RELIABLE_DETERIORATION = "reliable-deterioration"
    NO_RELIABLE_CHANGE = "no-reliable-change"
    UNKNOWN = "unknown"  # the instrument has no reliable-change threshold


@dataclass(frozen=True)
class Change:
    from_baseline: int
    kind: ChangeKind


def change(instrument: Instrument, baseline: int, total: int, is_baseline: bool = False) -> Change:
    """Change from baseline, classified against the instrument's reliable-change threshold and
    its direction (a falling PHQ-9 is an improvement, a falling BARC-10 a deterioration)."""
    delta = total - baseline
    if is_baseline:
        return Change(0, ChangeKind.BASELINE)
    threshold = instrument.reliable_change
    if threshold is None:
        return Change(delta, ChangeKind.UNKNOWN)
    if abs(delta) < threshold.points:
        return Change(delta, ChangeKind.NO_RELIABLE_CHANGE)
    better = delta < 0 if instrument.direction is Direction.HIGHER_IS_WORSE else delta > 0
    return Change(delta, ChangeKind.RELIABLE_IMPROVEMENT if better else ChangeKind.RELIABLE_DETERIORATION)


def current(assessments: list[Assessment]) -> list[Assessment]:
    """The assessments that stand: every record no correction points at, oldest completion first."""
    corrected = {a.amends_id for a in assessments if a.amends_id}
    return sorted((a for a in assessments if a.id not in corrected), key=lambda a: (a.completed_at, a.created_at))
