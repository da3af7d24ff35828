"""Session note <-> DocumentReference."""

import base64
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mappings import note
from mappings.codes import CodeTableError
from mappings.context import MappingContext, MappingError
from mappings.models import DocumentReference
from mappings.profiles import load_overlay, names
from service.domain import Note, NoteFields, PeerEncounter
from tests.mappings.support import PROGRAM, STAMP, assert_golden, context, ids, record

SESSION = record(
    PeerEncounter,
    "encounter-1",
    participant_id="participant-1",
    specialist_id="specialist-1",
    start=STAMP,
    end=STAMP + timedelta(minutes=52),
    modality="video",
    support_categories=["emotional"],
    status="finished",
)
SIGNED = STAMP + timedelta(hours=2)
FINAL = {
    "encounter_id": "encounter-1",
    "author_id": "specialist-1",
    "text": "Talked through the week; practised the grounding exercise. Next: peer group on Thursday.",
    "status": "final",
    "signed_at": SIGNED,
}
AMENDED = {
    **FINAL,
    "text": "Corrección: the peer group is on Friday — ¡no Thursday! ✓",
    "status": "amended",
    "signed_at": SIGNED + timedelta(days=1),
    "amends_id": "note-1",
}


def knowing(encounter_id: str = "encounter-1", author_id: str = "specialist-1", overlay: str = "generic"):
    return context(overlay).knowing(("encounter", encounter_id), ("specialist-role", author_id))


def text_of(resource: dict[str, Any]) -> str:
    return base64.b64decode(resource["content"][0]["attachment"]["data"]).decode("utf-8")


def test_golden_note():
    resource = note.to_fhir(record(Note, "note-1", **FINAL), SESSION, context())
    DocumentReference.model_validate(resource)
    assert resource["meta"] == {
        "profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-documentreference"]
    }
    assert (resource["status"], resource["docStatus"]) == ("current", "final")
    assert resource["type"]["coding"][0]["code"] == "11506-3"
    assert resource["category"][0]["coding"][0]["code"] == "clinical-note"
    assert resource["date"] == SIGNED.isoformat()
    assert resource["authenticator"] == resource["author"][0] == context().reference("specialist-role", "specialist-1")
    assert resource["subject"] == context().reference("participant", "participant-1")
    assert resource["context"]["encounter"] == [context().reference("encounter", "encounter-1")]
    assert resource["content"][0]["attachment"]["contentType"] == "text/plain; charset=utf-8"
    assert text_of(resource) == FINAL["text"]
    assert "relatesTo" not in resource
    assert_golden("note", resource)


def test_golden_amended_substance_use_note():
    resource = note.to_fhir(record(Note, "note-2", **AMENDED), SESSION, context(), substance_use=True)
    DocumentReference.model_validate(resource)
    assert resource["docStatus"] == "amended"
    assert resource["relatesTo"] == [{"code": "replaces", "target": context().reference("note", "note-1")}]
    assert resource["meta"]["security"] == [
        {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R", "display": "restricted"},
        {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "42CFRPart2", "display": "42 CFR Part2"},
        {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "code": "ETH",
            "display": "substance abuse information sensitivity",
        },
        {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "code": "NORDSCLCD",
            "display": "no redisclosure without consent directive",
        },
    ]
    assert resource["meta"]["profile"] == ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-documentreference"]
    assert text_of(resource) == AMENDED["text"]
    assert_golden("note-amended-part2", resource)


def test_no_security_labels_unless_substance_use():
    resource = note.to_fhir(record(Note, "note-2", **AMENDED), SESSION, context())
    assert "security" not in resource["meta"]


def test_epic_keeps_security_labels_beside_its_profile():
    resource = note.to_fhir(record(Note, "note-2", **AMENDED), SESSION, context("epic"), substance_use=True)
    DocumentReference.model_validate(resource)
    assert resource["meta"]["profile"][0].endswith("|3.1.1")
    assert [s["code"] for s in resource["meta"]["security"]] == ["R", "42CFRPart2", "ETH", "NORDSCLCD"]


def test_a_sud_counseling_note_is_part2_whatever_the_consent_says():
    item = record(Note, "note-2", **{**AMENDED, "sud_counseling_note": True})
    resource = note.to_fhir(item, SESSION, context())
    DocumentReference.model_validate(resource)
    assert [s["code"] for s in resource["meta"]["security"]] == ["R", "42CFRPart2", "ETH", "NORDSCLCD"]
    notice = resource["content"][1]["attachment"]
    assert notice["title"] == "Notice to accompany disclosure (42 CFR 2.32)"
    assert base64.b64decode(notice["data"]).decode() == note.CODES.part2_notice.text
    assert text_of(resource) == item.text
    assert note._text(resource) == item.text  # the notice is not read back as the note


def test_a_note_outside_part2_has_no_notice():
    resource = note.to_fhir(record(Note, "note-2", **AMENDED), SESSION, context())
    assert len(resource["content"]) == 1


def test_draft_note_is_preliminary_unsigned_and_dated_when_created():
    draft = {**FINAL, "status": "draft", "signed_at": None}
    resource = note.to_fhir(record(Note, "note-3", **draft), SESSION, context())
    DocumentReference.model_validate(resource)
    assert (resource["status"], resource["docStatus"]) == ("current", "preliminary")
    assert resource["date"] == STAMP.isoformat()
    assert "authenticator" not in resource


def test_retracted_note_is_entered_in_error():
    retracted = {**FINAL, "status": "entered-in-error"}
    resource = note.to_fhir(record(Note, "note-4", **retracted), SESSION, context())
    DocumentReference.model_validate(resource)
    assert (resource["status"], resource["docStatus"]) == ("entered-in-error", "entered-in-error")


def test_note_type_follows_the_overlay():
    overlay = load_overlay("generic").model_copy(update={"note_type": "mental_health_progress_note"})
    resource = note.to_fhir(record(Note, "note-1", **FINAL), SESSION, MappingContext(PROGRAM, overlay))
    assert resource["type"]["coding"][0]["code"] == "34904-3"
    unknown = load_overlay("generic").model_copy(update={"note_type": "discharge_summary"})
    with pytest.raises(CodeTableError, match="discharge_summary"):
        note.to_fhir(record(Note, "note-1", **FINAL), SESSION, MappingContext(PROGRAM, unknown))


def test_every_overlay_names_a_known_note_type():
    for name in names():
        assert load_overlay(name).note_type in note.CODES.note_types, name


def test_mapping_twice_is_byte_identical():
    import orjson

    item = record(Note, "note-2", **AMENDED)
    first = note.to_fhir(item, SESSION, context(), substance_use=True)
    assert orjson.dumps(first) == orjson.dumps(note.to_fhir(item, SESSION, context(), substance_use=True))


texts = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=300).filter(
    lambda s: s.strip() != ""
)


@settings(max_examples=80, deadline=None)
@given(texts, ids, ids)
def test_round_trip_keeps_text_encounter_and_author(text: str, encounter_id: str, author_id: str):
    session = SESSION.model_copy(update={"id": encounter_id})
    item = record(Note, "note-9", encounter_id=encounter_id, author_id=author_id, text=text, status="draft")
    back = note.from_fhir(note.to_fhir(item, session, context()), knowing(encounter_id, author_id))
    assert back == NoteFields.model_validate(item.model_dump(include=set(NoteFields.model_fields)))


def test_hospital_note_with_unknown_extensions_and_sparse_elements():
    ctx = knowing()
    resource = {
        "resourceType": "DocumentReference",
        "extension": [{"url": "http://example.org/fhir/StructureDefinition/unknown", "valueString": "x"}],
        "status": "current",
        "author": [{"display": "Someone at the hospital"}, ctx.reference("specialist-role", "specialist-1")],
        "content": [
            {"attachment": {"contentType": "application/pdf", "data": base64.b64encode(b"%PDF-1.7").decode()}},
            {"attachment": {"contentType": "text/plain", "data": base64.b64encode("Olá, café".encode()).decode()}},
        ],
        "context": {"encounter": [ctx.reference("encounter", "encounter-1")]},
    }
    fields = note.from_fhir(resource, ctx)
    assert fields == NoteFields(encounter_id="encounter-1", author_id="specialist-1", text="Olá, café")


def test_declared_charset_is_honoured():
    resource = note.to_fhir(record(Note, "note-1", **FINAL), SESSION, context())
    resource["content"][0]["attachment"] = {
        "contentType": "text/plain; charset=ISO-8859-1",
        "data": base64.b64encode("señal".encode("latin-1")).decode(),
    }
    assert note.from_fhir(resource, knowing()).text == "señal"


def _inbound() -> dict[str, Any]:
    return note.to_fhir(record(Note, "note-1", **FINAL), SESSION, context())


def _with_attachment(attachment: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"attachment": attachment}]


@pytest.mark.parametrize(
    ("change", "element"),
    [
        ({"context": None}, "DocumentReference.context.encounter[0]"),
        ({"context": {"encounter": [{"reference": "Encounter/other"}]}}, "DocumentReference.context.encounter[0]"),
        ({"author": None}, "DocumentReference.author"),
        ({"author": [{"reference": "Practitioner/other"}]}, "DocumentReference.author[0]"),
        (
            {"content": _with_attachment({"contentType": "text/plain", "data": "%%%"})},
            "DocumentReference.content[0].attachment.data",
        ),
        (
            {"content": _with_attachment({"contentType": "text/plain; charset=utf-8", "data": "/w=="})},
            "DocumentReference.content[0].attachment.data",
        ),
        (
            {"content": _with_attachment({"contentType": "text/plain; charset=klingon", "data": "aGk="})},
            "DocumentReference.content[0].attachment.contentType",
        ),
        (
            {"content": _with_attachment({"contentType": "text/plain", "url": "https://example.org/n.txt"})},
            "DocumentReference.content",
        ),
        ({"content": _with_attachment({"contentType": "text/plain", "data": "ICAg"})}, "DocumentReference (text)"),
        ({"date": "2026-01-05"}, "DocumentReference.date"),
    ],
)
def test_invalid_inbound_note_names_the_element(change, element):
    resource = {**_inbound(), **change}
    resource = {k: v for k, v in resource.items() if v is not None}
    with pytest.raises(MappingError) as caught:
        note.from_fhir(resource, knowing())
    assert caught.value.element == element
