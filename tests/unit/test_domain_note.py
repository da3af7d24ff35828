"""Unit tests for session notes: fields and the sign / amend / retract lifecycle."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from service.domain.errors import IllegalTransition, ImmutableRecord
from service.domain.note import (
    AmendmentFields,
    Note,
    NoteFields,
    NoteState,
    NoteStatus,
    amendment_state,
    check_editable,
    retract,
    sign,
)

CREATED = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SIGNED = datetime(2024, 5, 2, 9, 30, tzinfo=UTC)
NOW = datetime(2024, 5, 3, 16, 45, tzinfo=UTC)


def note(status: NoteStatus = NoteStatus.DRAFT, **overrides: Any) -> Note:
    data: dict[str, Any] = {
        "encounter_id": "enc-1",
        "author_id": "spec-1",
        "text": "Talked about housing; plan to call the landlord.",
        "status": status.value,
        "signed_at": None if status is NoteStatus.DRAFT else SIGNED,
        "amends_id": "note-0" if status is NoteStatus.AMENDED else None,
        "id": "note-1",
        "program_id": "prog-1",
        "version": 2,
        "created_at": CREATED,
        "updated_at": CREATED,
    }
    data.update(overrides)
    return Note.model_validate(data)


def others(*allowed: NoteStatus) -> list[NoteStatus]:
    return [s for s in NoteStatus if s not in allowed]


# --- fields ---------------------------------------------------------------------------------------


def test_note_fields_valid() -> None:
    fields = NoteFields.model_validate({"encounter_id": "enc-1", "author_id": "spec-1", "text": "  Check-in.  "})
    assert fields.text == "Check-in."


@pytest.mark.parametrize(
    ("data", "loc"),
    [
        ({"encounter_id": "enc-1", "author_id": "spec-1", "text": ""}, ("text",)),
        ({"encounter_id": "enc-1", "author_id": "spec-1", "text": "   "}, ("text",)),
        ({"encounter_id": "enc-1", "author_id": "spec-1", "text": "x" * 20_001}, ("text",)),
        ({"encounter_id": "enc 1", "author_id": "spec-1", "text": "ok"}, ("encounter_id",)),
        ({"author_id": "spec-1", "text": "ok"}, ("encounter_id",)),
        ({"encounter_id": "enc-1", "author_id": "spec-1", "text": "ok", "status": "final"}, ("status",)),
    ],
)
def test_note_fields_invalid(data: dict[str, Any], loc: tuple[str, ...]) -> None:
    with pytest.raises(ValidationError) as caught:
        NoteFields.model_validate(data)
    assert caught.value.errors()[0]["loc"] == loc


def test_note_fields_refuse_state_fields() -> None:
    """A plain update cannot smuggle in a status or signature."""
    with pytest.raises(ValidationError) as caught:
        NoteFields.model_validate({"encounter_id": "e", "author_id": "a", "text": "t", "signed_at": SIGNED})
    assert caught.value.errors()[0]["type"] == "extra_forbidden"


def test_amendment_fields() -> None:
    assert AmendmentFields(author_id="spec-2", text="Correction: Tuesday").author_id == "spec-2"
    with pytest.raises(ValidationError) as caught:
        AmendmentFields.model_validate({"author_id": "spec-2", "text": "x", "encounter_id": "enc-2"})
    assert caught.value.errors()[0]["type"] == "extra_forbidden"


def test_note_state_defaults_to_draft() -> None:
    assert NoteState() == NoteState(status=NoteStatus.DRAFT, signed_at=None, amends_id=None)


def test_note_state_needs_aware_signature_time() -> None:
    with pytest.raises(ValidationError) as caught:
        NoteState(status=NoteStatus.FINAL, signed_at=SIGNED.replace(tzinfo=None))
    assert caught.value.errors()[0]["type"] == "timezone_aware"


def test_note_record_with_meta() -> None:
    record = note(NoteStatus.FINAL)
    assert (record.id, record.program_id, record.version) == ("note-1", "prog-1", 2)
    assert (record.status, record.signed_at) == (NoteStatus.FINAL, SIGNED)


# --- check_editable -------------------------------------------------------------------------------


def test_draft_is_editable() -> None:
    check_editable(note(NoteStatus.DRAFT))


@pytest.mark.parametrize("status", others(NoteStatus.DRAFT))
def test_non_draft_is_not_editable(status: NoteStatus) -> None:
    with pytest.raises(ImmutableRecord, match=f"a {status.value} note cannot be edited; amend it instead"):
        check_editable(note(status))


# --- sign -----------------------------------------------------------------------------------------


def test_sign_a_draft() -> None:
    state = sign(note(NoteStatus.DRAFT), NOW)
    assert state == NoteState(status=NoteStatus.FINAL, signed_at=NOW, amends_id=None)


@pytest.mark.parametrize("status", others(NoteStatus.DRAFT))
def test_only_a_draft_can_be_signed(status: NoteStatus) -> None:
    with pytest.raises(IllegalTransition, match=f"only a draft note can be signed; this one is {status.value}"):
        sign(note(status), NOW)


def test_signing_does_not_change_the_note() -> None:
    draft = note(NoteStatus.DRAFT)
    sign(draft, NOW)
    assert (draft.status, draft.signed_at) == (NoteStatus.DRAFT, None)


# --- amendment_state ------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [NoteStatus.FINAL, NoteStatus.AMENDED])
def test_amend_a_signed_note(status: NoteStatus) -> None:
    original = note(status, id="note-7")
    state = amendment_state(original, NOW)
    assert state == NoteState(status=NoteStatus.AMENDED, signed_at=NOW, amends_id="note-7")


@pytest.mark.parametrize("status", others(NoteStatus.FINAL, NoteStatus.AMENDED))
def test_only_a_signed_note_can_be_amended(status: NoteStatus) -> None:
    with pytest.raises(IllegalTransition, match=f"only a signed note can be amended; this one is {status.value}"):
        amendment_state(note(status), NOW)


def test_amendment_chain_points_to_the_previous_version() -> None:
    first = note(NoteStatus.FINAL, id="note-1")
    second_state = amendment_state(first, NOW)
    second = note(NoteStatus.AMENDED, id="note-2", amends_id=second_state.amends_id, signed_at=second_state.signed_at)
    third_state = amendment_state(second, NOW)
    assert (second_state.amends_id, third_state.amends_id) == ("note-1", "note-2")


# --- retract --------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", others(NoteStatus.ENTERED_IN_ERROR))
def test_retract_keeps_signature_and_amendment_link(status: NoteStatus) -> None:
    original = note(status)
    state = retract(original)
    assert state.status is NoteStatus.ENTERED_IN_ERROR
    assert (state.signed_at, state.amends_id) == (original.signed_at, original.amends_id)


def test_retract_amended_note_keeps_its_link() -> None:
    state = retract(note(NoteStatus.AMENDED, amends_id="note-0"))
    assert (state.signed_at, state.amends_id) == (SIGNED, "note-0")


def test_retract_twice_is_refused() -> None:
    final = note(NoteStatus.FINAL)
    retracted = Note.model_validate({**final.model_dump(), **retract(final).model_dump()})
    assert retracted.status is NoteStatus.ENTERED_IN_ERROR
    with pytest.raises(IllegalTransition, match="the note is already marked entered-in-error"):
        retract(retracted)


def test_retracted_note_cannot_be_signed_amended_or_edited() -> None:
    retracted = note(NoteStatus.ENTERED_IN_ERROR)
    with pytest.raises(IllegalTransition):
        sign(retracted, NOW)
    with pytest.raises(IllegalTransition):
        amendment_state(retracted, NOW)
    with pytest.raises(ImmutableRecord):
        check_editable(retracted)
