"""Session notes: drafts are edited, final notes are immutable and corrected by amendment."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import AwareDatetime, Field

from .common import DomainModel, LongText, RecordId, RecordMeta
from .errors import IllegalTransition, ImmutableRecord


class NoteStatus(StrEnum):
    DRAFT = "draft"
    FINAL = "final"
    AMENDED = "amended"
    ENTERED_IN_ERROR = "entered-in-error"


class NoteFields(DomainModel):
    encounter_id: RecordId
    author_id: RecordId
    text: LongText
    sud_counseling_note: bool = Field(
        default=False,
        description=(
            "A substance-use-disorder counseling note (42 CFR 2.11, 2024 rule): shared only under a consent "
            "naming the category sud-counseling-notes, never under notes. An amendment keeps its original's value."
        ),
    )


class NoteState(DomainModel):
    """Set by the note's actions (sign, amend, retract), never by a plain update."""

    status: NoteStatus = NoteStatus.DRAFT
    signed_at: AwareDatetime | None = None
    amends_id: RecordId | None = None


class Note(NoteFields, NoteState, RecordMeta):
    pass


class AmendmentFields(DomainModel):
    author_id: RecordId
    text: LongText


def check_editable(note: Note) -> None:
    if note.status is not NoteStatus.DRAFT:
        raise ImmutableRecord(f"a {note.status.value} note cannot be edited; amend it instead")


def sign(note: Note, at: datetime) -> NoteState:
    if note.status is not NoteStatus.DRAFT:
        raise IllegalTransition(f"only a draft note can be signed; this one is {note.status.value}")
    return NoteState(status=NoteStatus.FINAL, signed_at=at)


def amendment_state(original: Note, at: datetime) -> NoteState:
    if original.status not in (NoteStatus.FINAL, NoteStatus.AMENDED):
        raise IllegalTransition(
            f"only a signed note can be amended; this one is {original.status.value} (edit a draft directly)"
        )
    return NoteState(status=NoteStatus.AMENDED, signed_at=at, amends_id=original.id)


def retract(note: Note) -> NoteState:
    if note.status is NoteStatus.ENTERED_IN_ERROR:
        raise IllegalTransition("the note is already marked entered-in-error")
    return NoteState(status=NoteStatus.ENTERED_IN_ERROR, signed_at=note.signed_at, amends_id=note.amends_id)
