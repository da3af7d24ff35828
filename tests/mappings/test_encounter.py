"""Peer encounter <-> Encounter."""

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mappings import encounter
from mappings.context import MappingError
from mappings.models import Encounter
from service.domain import EncounterStatus, Modality, PeerEncounter, PeerEncounterFields, SupportCategory
from tests.mappings.support import STAMP, assert_golden, context, ids, record, safe_text

CATEGORY_SYSTEM = "https://peer.example.org/ids/CodeSystem/peer-support-category"
CATEGORY_EXTENSION = "https://peer.example.org/ids/StructureDefinition/peer-support-category"
GOAL_EXTENSION = "http://hl7.org/fhir/StructureDefinition/resource-pertainsToGoal"

FULL = {
    "participant_id": "participant-1",
    "specialist_id": "specialist-1",
    "start": STAMP,
    "end": STAMP + timedelta(minutes=52),
    "modality": "group",
    "location": "Harbor Collective, room 2",
    "support_categories": ["emotional", "affiliational"],
    "goal_ids": ["goal-1", "goal-2"],
    "status": "finished",
}


def knowing(fields: dict[str, Any], overlay: str = "generic"):
    return context(overlay).knowing(
        ("participant", fields["participant_id"]),
        ("specialist-role", fields["specialist_id"]),
        ("specialist", fields["specialist_id"]),
        *(("goal", goal) for goal in fields.get("goal_ids", [])),
    )


def fields_of(session: PeerEncounter) -> PeerEncounterFields:
    return PeerEncounterFields.model_validate(session.model_dump(include=set(PeerEncounterFields.model_fields)))


def type_codes(resource: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c["system"], c["code"]) for t in resource["type"] for c in t["coding"]]


def test_golden_encounter():
    resource = encounter.to_fhir(record(PeerEncounter, "encounter-1", **FULL), context())
    Encounter.model_validate(resource)
    assert resource["meta"]["profile"] == ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-encounter"]
    assert resource["class"]["code"] == "AMB"
    assert ("http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets", "H0038") in type_codes(resource)
    assert ("http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets", "HQ") in type_codes(resource)
    assert resource["length"] == {"value": 52, "unit": "min", "system": "http://unitsofmeasure.org", "code": "min"}
    units = [e["valueUnsignedInt"] for e in resource["extension"] if e["url"].endswith("/billable-units")]
    assert units == [3]
    goals = [e["valueReference"]["reference"] for e in resource["extension"] if e["url"] == GOAL_EXTENSION]
    assert goals == [
        context().reference("goal", "goal-1")["reference"],
        context().reference("goal", "goal-2")["reference"],
    ]
    assert [p["individual"]["reference"].split("/")[0] for p in resource["participant"]] == [
        "PractitionerRole",
        "Practitioner",
    ]
    assert_golden("encounter", resource)


def test_golden_encounter_epic():
    resource = encounter.to_fhir(record(PeerEncounter, "encounter-1", **FULL), context("epic"))
    Encounter.model_validate(resource)
    assert resource["meta"]["profile"] == ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-encounter|3.1.1"]
    # US Core 3.1.1: Encounter.participant.individual is Reference(US Core Practitioner) only
    assert [p["individual"]["reference"] for p in resource["participant"]] == [
        context("epic").reference("specialist", "specialist-1")["reference"]
    ]
    assert_golden("encounter-epic", resource)


def test_epic_encounter_still_names_the_specialist_on_the_way_back():
    session = record(PeerEncounter, "encounter-1", **FULL)
    epic = encounter.to_fhir(session, context("epic"))
    assert encounter.from_fhir(epic, knowing(FULL, "epic")).specialist_id == "specialist-1"


def test_epic_drops_the_extension_but_still_carries_the_categories():
    session = record(PeerEncounter, "encounter-1", **FULL)
    generic = encounter.to_fhir(session, context("generic"))
    epic = encounter.to_fhir(session, context("epic"))
    categories = [(CATEGORY_SYSTEM, "emotional"), (CATEGORY_SYSTEM, "affiliational")]
    in_extension = [
        (e["valueCoding"]["system"], e["valueCoding"]["code"])
        for e in generic["extension"]
        if e["url"] == CATEGORY_EXTENSION
    ]
    assert in_extension == categories
    assert not set(categories) & set(type_codes(generic))
    assert "extension" not in epic
    assert [c for c in type_codes(epic) if c[0] == CATEGORY_SYSTEM] == categories
    for overlay, resource in (("generic", generic), ("epic", epic)):
        back = encounter.from_fhir(resource, knowing(FULL, overlay))
        assert back.support_categories == [SupportCategory.EMOTIONAL, SupportCategory.AFFILIATIONAL]
    # documented loss: goals travel only as an extension
    assert encounter.from_fhir(epic, knowing(FULL, "epic")).goal_ids == []


def test_mapping_twice_is_byte_identical():
    import orjson

    session = record(PeerEncounter, "encounter-1", **FULL)
    assert orjson.dumps(encounter.to_fhir(session, context())) == orjson.dumps(encounter.to_fhir(session, context()))


@pytest.mark.parametrize(
    ("modality", "klass"), [("in-person", "AMB"), ("group", "AMB"), ("video", "VR"), ("phone", "VR")]
)
def test_class_follows_the_modality(modality, klass):
    session = record(PeerEncounter, "encounter-1", **{**FULL, "modality": modality})
    resource = encounter.to_fhir(session, context())
    assert resource["class"]["code"] == klass
    has_hq = ("http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets", "HQ") in type_codes(resource)
    assert has_hq is (modality == "group")


def test_planned_session_has_no_length_or_units():
    planned = {**FULL, "status": "planned", "end": None, "support_categories": [], "goal_ids": []}
    resource = encounter.to_fhir(record(PeerEncounter, "encounter-2", **planned), context())
    Encounter.model_validate(resource)
    assert "length" not in resource and "extension" not in resource
    assert resource["period"] == {"start": STAMP.isoformat()}


zones = st.sampled_from([UTC, timezone(timedelta(hours=-7)), timezone(timedelta(hours=5, minutes=30))])
starts = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31), timezones=zones)


@st.composite
def encounters(draw: st.DrawFn) -> dict[str, Any]:
    status = draw(st.sampled_from(list(EncounterStatus)))
    finished = status is EncounterStatus.FINISHED
    start = draw(starts)
    minutes = draw(st.integers(1, 720) if finished else st.none() | st.integers(1, 720))
    return {
        "participant_id": draw(ids),
        "specialist_id": draw(ids),
        "start": start,
        "end": None if minutes is None else start + timedelta(minutes=minutes),
        "modality": draw(st.sampled_from(list(Modality))),
        "location": draw(st.none() | safe_text),
        "support_categories": draw(
            st.lists(st.sampled_from(list(SupportCategory)), unique=True, min_size=1 if finished else 0, max_size=4)
        ),
        "goal_ids": draw(st.lists(ids, unique=True, max_size=3)),
        "status": status,
    }


@settings(max_examples=80, deadline=None)
@given(encounters())
def test_round_trip_keeps_every_field(fields: dict[str, Any]):
    session = record(PeerEncounter, "encounter-9", **fields)
    back = encounter.from_fhir(encounter.to_fhir(session, context()), knowing(fields))
    assert back == fields_of(session)
    # epic: everything but the goals (an extension, and Encounter has no element for them)
    epic = encounter.from_fhir(encounter.to_fhir(session, context("epic")), knowing(fields, "epic"))
    assert epic == fields_of(session).model_copy(update={"goal_ids": []})


def test_hospital_encounter_with_unknown_extensions_and_sparse_elements():
    ctx = context().knowing(("participant", "participant-1"), ("specialist", "specialist-1"))
    resource = {
        "resourceType": "Encounter",
        "id": "hosp-enc-1",
        "extension": [{"url": "http://example.org/fhir/StructureDefinition/unknown", "valueString": "x"}],
        "status": "in-progress",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "VR"},
        "subject": ctx.reference("participant", "participant-1"),
        "participant": [
            {"individual": {"reference": "RelatedPerson/sister", "display": "Sister"}},
            {"individual": ctx.reference("specialist", "specialist-1")},
        ],
        "period": {"start": "2026-01-05T09:30:00-08:00"},
    }
    fields = encounter.from_fhir(resource, ctx)
    assert fields.modality is Modality.VIDEO
    assert fields.status is EncounterStatus.IN_PROGRESS
    assert fields.specialist_id == "specialist-1"
    assert fields.end is None and fields.location is None
    assert fields.support_categories == [] and fields.goal_ids == []
    assert fields.start == datetime(2026, 1, 5, 17, 30, tzinfo=UTC)


def test_group_is_read_from_the_hq_modifier_without_our_modality_code():
    session = record(PeerEncounter, "encounter-1", **FULL)
    resource = encounter.to_fhir(session, context())
    resource["type"] = [t for t in resource["type"] if "session-modality" not in t["coding"][0]["system"]]
    assert encounter.from_fhir(resource, knowing(FULL)).modality is Modality.GROUP


def _inbound() -> dict[str, Any]:
    return encounter.to_fhir(record(PeerEncounter, "encounter-1", **FULL), context())


@pytest.mark.parametrize(
    ("change", "element"),
    [
        ({"status": "arrived"}, "Encounter.status"),
        ({"period": None}, "Encounter.period.start"),
        ({"period": {"start": "yesterday"}}, "Encounter.period.start"),
        (
            {"class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "HH"}, "type": None},
            "Encounter.class",
        ),
        ({"subject": {"reference": "Patient/someone-else"}}, "Encounter.subject"),
        ({"subject": None}, "Encounter.subject"),
        ({"participant": None}, "Encounter.participant"),
        (
            {"participant": [{"individual": {"reference": "Practitioner/unknown"}}]},
            "Encounter.participant[0].individual",
        ),
        ({"period": {"start": "2026-01-05T12:00:00Z"}}, "Encounter"),  # finished without an end
        ({"location": [{"location": {"display": "x" * 201}}]}, "Encounter (location)"),
    ],
)
def test_invalid_inbound_encounter_names_the_element(change, element):
    resource = {**_inbound(), **change}
    resource = {k: v for k, v in resource.items() if v is not None}
    with pytest.raises(MappingError) as caught:
        encounter.from_fhir(resource, knowing(FULL))
    assert caught.value.element == element


def test_unknown_goal_reference_names_the_extension():
    resource = _inbound()
    known = knowing({**FULL, "goal_ids": ["goal-1"]})
    with pytest.raises(MappingError) as caught:
        encounter.from_fhir(resource, known)
    index = next(i for i, e in enumerate(resource["extension"]) if e["url"] == GOAL_EXTENSION) + 1
    assert caught.value.element == f"Encounter.extension[{index}].valueReference"
