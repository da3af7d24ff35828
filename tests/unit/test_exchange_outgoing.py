"""The pure parts of a delivery: references found in canonical JSON, their rewriting to the EHR's
ids, what the EHR already holds skipped, the order of writes and the transaction Bundle."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from service.exchange.answers import Permanent
from service.exchange.capabilities import Capabilities
from service.exchange.collect import merged, still_missing
from service.exchange.outgoing import (
    Delivered,
    Outgoing,
    from_projection,
    identifier_query,
    in_order,
    references_in,
    rewritten,
    unsent,
)
from service.exchange.send import plan, transaction_bundle

PATIENT = {"resourceType": "Patient", "id": "p1", "identifier": [{"system": "urn:mrn", "value": "7"}]}
ENCOUNTER = {
    "resourceType": "Encounter",
    "id": "e1",
    "status": "finished",
    "subject": {"reference": "Patient/p1"},
    "participant": [{"individual": {"reference": "Practitioner/pr-1"}}],
    "serviceProvider": {"reference": "https://elsewhere.example/Organization/o1"},
}
NOTE = {
    "resourceType": "DocumentReference",
    "id": "n1",
    "identifier": [{"system": "urn:notes", "value": "n1"}],
    "subject": {"reference": "Patient/p1"},
    "context": {"encounter": [{"reference": "Encounter/e1"}]},
    "description": 'says "reference": "Patient/hidden" in its text',
}


def _capabilities(**interactions: tuple[str, ...]) -> Capabilities:
    statement: dict[str, Any] = {
        "rest": [
            {
                "interaction": [{"code": "transaction"}],
                "resource": [
                    {"type": t, "interaction": [{"code": c} for c in codes]} for t, codes in interactions.items()
                ],
            }
        ]
    }
    return Capabilities.of(statement)


def test_references_are_found_anywhere_in_canonical_json_but_not_inside_strings() -> None:
    canonical = orjson.dumps(NOTE, option=orjson.OPT_SORT_KEYS)
    assert references_in(canonical) == ("Encounter/e1", "Patient/p1")
    assert Outgoing(NOTE, True).references == ("Encounter/e1", "Patient/p1")


def test_absolute_references_are_not_dependencies() -> None:
    assert Outgoing(ENCOUNTER, False).references == ("Practitioner/pr-1", "Patient/p1")


def test_content_hash_ignores_key_order_and_follows_content() -> None:
    reordered = dict(reversed(list(PATIENT.items())))
    assert Outgoing(reordered, False).content_hash == Outgoing(PATIENT, False).content_hash
    changed = {**PATIENT, "gender": "female"}
    assert Outgoing(changed, False).content_hash != Outgoing(PATIENT, False).content_hash


def test_stored_resource_is_parsed_without_our_version_metadata() -> None:
    body = orjson.dumps({**PATIENT, "meta": {"versionId": "3", "lastUpdated": "2026-01-01T00:00:00Z"}})
    item = Outgoing.stored("Patient", "p1", body, "hash", primary=False)
    assert item.resource == PATIENT
    tagged = orjson.dumps({**PATIENT, "meta": {"versionId": "3", "profile": ["urn:p"]}})
    assert from_projection(tagged)["meta"] == {"profile": ["urn:p"]}


def test_rewriting_points_references_at_the_ehrs_ids() -> None:
    item = Outgoing(NOTE, True)
    body = rewritten(item, {"Patient/p1": "Patient/ehr-9"})
    assert body["subject"] == {"reference": "Patient/ehr-9"}
    assert body["context"]["encounter"] == [{"reference": "Encounter/e1"}]
    assert NOTE["subject"] == {"reference": "Patient/p1"}  # the original is left alone


def test_rewriting_under_our_own_ids_sends_the_resource_as_it_is() -> None:
    item = Outgoing(NOTE, True)
    assert rewritten(item, {"Patient/p1": "Patient/p1"}) is item.resource


def test_what_the_ehr_holds_unchanged_is_skipped() -> None:
    patient, note = Outgoing(PATIENT, False), Outgoing(NOTE, True)
    held = {"Patient/p1": ("ehr-9", patient.content_hash), "DocumentReference/n1": ("n1", "an older hash")}
    assert unsent([patient, note], held) == [note]
    capabilities = _capabilities(Patient=("update",), DocumentReference=("update",))
    assert plan(capabilities, [patient, note], held) == [(note, "PUT")]


def test_writes_use_update_else_conditional_create() -> None:
    patient, note = Outgoing(PATIENT, False), Outgoing(NOTE, True)
    capabilities = _capabilities(Patient=("create",), DocumentReference=("update", "create"))
    assert plan(capabilities, [patient, note], {}) == [(patient, "POST"), (note, "PUT")]
    assert identifier_query(PATIENT) == "identifier=urn:mrn|7"


def test_a_dependency_the_ehr_takes_no_write_of_is_left_out_but_the_change_itself_is_refused() -> None:
    encounter, note = Outgoing(ENCOUNTER, False), Outgoing(NOTE, True)
    capabilities = _capabilities(Encounter=("create",), DocumentReference=("read",))
    with pytest.raises(Permanent, match="DocumentReference"):
        plan(capabilities, [encounter, note], {})
    takes_notes = _capabilities(Encounter=("create",), DocumentReference=("create",))
    assert plan(takes_notes, [encounter, note], {}) == [(note, "POST")]  # no identifier: no conditional create


def test_dependencies_go_first() -> None:
    items = [Outgoing(NOTE, True), Outgoing(ENCOUNTER, False), Outgoing(PATIENT, False)]
    assert [o.resource_type for o in in_order(items)] == ["Patient", "Encounter", "DocumentReference"]


def test_a_level_of_references_names_only_dependencies_not_yet_gathered() -> None:
    gathered = {"Patient/p1": Outgoing(PATIENT, False)}
    level = {"Patient/p1", "Practitioner/pr-1", "DocumentReference/n2", "Encounter/e1"}
    assert still_missing(level, gathered) == {"Practitioner/pr-1", "Encounter/e1"}


def test_merged_changes_keep_each_resource_once_as_a_primary_where_one_change_has_it() -> None:
    as_dependency, as_change = Outgoing(ENCOUNTER, False), Outgoing(ENCOUNTER, True)
    result = merged([[as_dependency, Outgoing(PATIENT, False)], [as_change]])
    assert [o.reference for o in result] == ["Patient/p1", "Encounter/e1"]
    assert result[1] is as_change


def test_transaction_bundle_refers_to_what_it_creates_by_full_url() -> None:
    patient, note = Outgoing(PATIENT, False), Outgoing(NOTE, True)
    bundle = transaction_bundle("https://ehr.example/fhir", [(patient, "POST"), (note, "PUT")], {})
    first, second = bundle["entry"]
    assert first["fullUrl"] == "urn:uuid:p1"
    assert first["request"] == {"method": "POST", "url": "Patient", "ifNoneExist": "identifier=urn:mrn|7"}
    assert "id" not in first["resource"]
    assert second["fullUrl"] == "https://ehr.example/fhir/DocumentReference/n1"
    assert second["resource"]["subject"] == {"reference": "urn:uuid:p1"}


def test_delivered_notes_whose_data_went_out() -> None:
    delivered = Delivered()
    note = Outgoing(NOTE, True)
    delivered.add(note, "n1")
    assert delivered.written == {"DocumentReference/n1": ("n1", note.content_hash)}
    assert delivered.patients == {"p1"}
