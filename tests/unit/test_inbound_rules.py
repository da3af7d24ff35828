"""The pure rules of inbound writes: MRN matching, conditional-create queries, where an error points,
what a clinic may change on its Task, and how a transaction Bundle is read."""

from __future__ import annotations

from typing import Any

import pytest

from service.domain import ParticipantFields
from service.domain.errors import BadRequest, RuleViolation
from service.inbound.errors import Where
from service.inbound.lookups import conditional_criteria, literal
from service.inbound.patients import hospital_mrns, same_person
from service.inbound.referrals import clinic_identifiers
from service.inbound.tasks import cancel_reason, changed_elements
from service.inbound.transaction import entries_of, pair_tasks
from tests.factories import MRN_SYSTEM, participant_body

OTHER_MRN = "https://other.example.org/mrn"


def person(**overrides: Any) -> ParticipantFields:
    return ParticipantFields.model_validate(participant_body(**overrides))


# --- matching a hospital's Patient ---------------------------------------------------------------
def test_only_mrn_identifiers_count_sorted():
    fields = person(
        identifiers=[
            {"type": "MR", "system": OTHER_MRN, "value": "Z"},
            {"type": "MR", "system": MRN_SYSTEM, "value": "MRN-1"},
            {"type": "MA", "system": "https://medicaid.example.org/id", "value": "123456789"},
        ]
    )
    assert hospital_mrns(fields) == [(MRN_SYSTEM, "MRN-1"), (OTHER_MRN, "Z")]


def test_same_mrn_birth_date_and_family_name_is_the_same_person():
    held = person()
    assert same_person(held, person(), MRN_SYSTEM, "MRN-1")
    assert same_person(held, person(name={"family": "EXAMPLE", "given": ["Someone"]}), MRN_SYSTEM, "MRN-1")


@pytest.mark.parametrize(
    ("sent", "system", "value"),
    [
        ({"birth_date": "1991-04-01"}, MRN_SYSTEM, "MRN-1"),
        ({"name": {"family": "Other", "given": ["Robin"]}}, MRN_SYSTEM, "MRN-1"),
        ({}, MRN_SYSTEM, "MRN-2"),  # the participant no longer has that MRN
        ({}, OTHER_MRN, "MRN-1"),  # the same value from another hospital
    ],
)
def test_a_different_person_is_not_matched(sent, system, value):
    assert not same_person(person(), person(**sent), system, value)


# --- lookups -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("reference", "found"),
    [
        ("Patient/abc", ("Patient", "abc")),
        ("https://peer.example.org/fhir/Patient/abc", ("Patient", "abc")),
        ("Patient/abc/_history/3", ("Patient", "abc")),
        ("urn:uuid:0d4c", None),
        ("#pat", None),
    ],
)
def test_literal_references(reference, found):
    assert literal(reference) == found


def test_conditional_queries_take_tokens_references_and_id():
    criteria = conditional_criteria("ServiceRequest", "ServiceRequest?identifier=s|1,s|2&_id=x", "If-None-Exist")
    assert criteria == [("identifier", ["s|1", "s|2"]), ("_id", ["x"])]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "give search parameters"),
        ("identifier=", "identifier has no value"),
        ("authored=2026-01-01", "'authored' cannot be used here; use _id"),
        ("name=Robin", "'name' cannot be used here"),
    ],
)
def test_unusable_conditional_queries_are_bad_requests(query, message):
    with pytest.raises(BadRequest) as caught:
        conditional_criteria("ServiceRequest" if "authored" in query else "Patient", query, "X.ifNoneExist")
    assert caught.value.detail.startswith("X.ifNoneExist: ")
    assert message in caught.value.detail


# --- errors name the element as sent ----------------------------------------------------------------
def test_where_maps_elements_to_their_entry():
    where = Where({"ServiceRequest": "Bundle.entry[1].resource"})
    assert where("ServiceRequest.subject") == "Bundle.entry[1].resource.subject"
    assert where("ServiceRequest.contained[0]") == "Bundle.entry[1].resource.contained[0]"
    assert where("ServiceRequest") == "Bundle.entry[1].resource"
    assert where("ServiceRequestX.a") == "ServiceRequestX.a"
    assert where("Task.status") == "Task.status"
    nested = where.with_("Patient", "Bundle.entry[1].resource.contained[0]")
    assert nested("Patient.birthDate") == "Bundle.entry[1].resource.contained[0].birthDate"


# --- the clinic's order and Task ----------------------------------------------------------------------
def test_clinic_identifiers_leave_ours_and_malformed_ones_out():
    sent = {
        "identifier": [
            {"system": "urn:clinic", "value": "B"},
            {"system": "urn:ours", "value": "X"},
            {"system": "urn:clinic", "value": "A"},
            {"value": "no-system"},
            "not an identifier",
        ]
    }
    assert clinic_identifiers(sent, "urn:ours") == [("urn:clinic", "A"), ("urn:clinic", "B")]
    assert clinic_identifiers({"identifier": 7}, "urn:ours") == []


def test_changed_elements_ignore_what_peerlink_sets():
    current = {"id": "t", "meta": {"versionId": "1"}, "status": "requested", "owner": {"reference": "a"}}
    wanted = {"id": "t", "meta": {"versionId": "9"}, "status": "cancelled", "businessStatus": {"text": "x"}}
    assert changed_elements(current, wanted) == ["owner", "status"]


def test_cancel_reason():
    assert cancel_reason({"statusReason": {"text": "moved"}}) == "moved"
    assert cancel_reason({"statusReason": {"coding": [{"code": "x"}, {"display": "shown"}]}}) == "shown"
    assert cancel_reason({"status": "entered-in-error"}) == "entered in error by the clinic"
    assert cancel_reason({"status": "cancelled"}) is None


# --- transaction Bundles ------------------------------------------------------------------------------
def entry(method: str, resource: dict[str, Any], url: str, full_url: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"resource": resource, "request": {"method": method, "url": url}}
    if full_url:
        found["fullUrl"] = full_url
    return found


def bundle(*entries: dict[str, Any], kind: str = "transaction") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def test_tasks_pair_with_the_service_request_they_focus():
    sr = entry("POST", {"resourceType": "ServiceRequest"}, "ServiceRequest", "urn:uuid:sr")
    task = entry("POST", {"resourceType": "Task", "focus": {"reference": "urn:uuid:sr"}}, "Task")
    lone = entry("POST", {"resourceType": "Task", "focus": {"reference": "ServiceRequest/held"}}, "Task")
    entries = entries_of(bundle(sr, lone, task))
    paired = pair_tasks(entries)
    assert list(paired) == [0]
    assert paired[0].index == 2


def test_a_second_task_for_one_service_request_is_refused():
    sr = entry("POST", {"resourceType": "ServiceRequest"}, "ServiceRequest", "urn:uuid:sr")
    task = entry("POST", {"resourceType": "Task", "focus": {"reference": "urn:uuid:sr"}}, "Task")
    with pytest.raises(RuleViolation) as caught:
        pair_tasks(entries_of(bundle(sr, task, task)))
    assert caught.value.detail.startswith("Bundle.entry[2].resource.focus")


@pytest.mark.parametrize(
    ("sent", "element"),
    [
        (bundle(kind="batch"), "Bundle.type"),
        (bundle(kind="collection"), "Bundle.type"),
        ({"resourceType": "Bundle", "type": "transaction", "entry": "x"}, "Bundle.entry"),
        (bundle(entry("DELETE", {"resourceType": "Task"}, "Task/x")), "Bundle.entry[0].request.method"),
        (bundle(entry("POST", {"resourceType": "Task"}, "Patient")), "Bundle.entry[0].request.url"),
        (bundle(entry("PUT", {"resourceType": "Task"}, "Task")), "Bundle.entry[0].request.url"),
        (
            bundle(
                entry("POST", {"resourceType": "Patient"}, "Patient", "urn:uuid:a"),
                entry("POST", {"resourceType": "Patient"}, "Patient", "urn:uuid:a"),
            ),
            "Bundle.entry[1].fullUrl",
        ),
    ],
)
def test_bundles_that_are_not_transactions_here_are_bad_requests(sent, element):
    with pytest.raises(BadRequest) as caught:
        entries_of(sent)
    assert caught.value.detail.startswith(f"{element}: ")


def test_entries_read_if_match_and_the_updated_task():
    put = entry("PUT", {"resourceType": "Task", "id": "t1"}, "Task/t1")
    put["request"]["ifMatch"] = 'W/"4"'
    (read,) = entries_of(bundle(put))
    assert (read.method, read.target_id, read.if_match, read.root) == ("PUT", "t1", 4, "Bundle.entry[0].resource")
