"""Referral <-> ServiceRequest + Task (Gravity SDOH Clinical Care closed-loop referral)."""

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mappings import referral
from mappings.context import MappingError
from mappings.models import ServiceRequest, Task
from service.domain import PeerEncounter, Referral, ReferralAction, ReferralFields, ReferralStatus, TransitionRequest
from service.domain.referral import TRANSITIONS, ReferralState, apply
from tests.mappings.support import assert_golden, context, ids, names, record, safe_text

SDOHCC = "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/"
BSER_STATUS = "http://hl7.org/fhir/us/bser/CodeSystem/TaskBusinessStatusCS"
NPI = "http://hl7.org/fhir/sid/us-npi"
# FHIR R4 task-status (Task.status is a required binding)
TASK_STATUSES = {
    "draft",
    "requested",
    "received",
    "accepted",
    "rejected",
    "ready",
    "cancelled",
    "in-progress",
    "on-hold",
    "failed",
    "completed",
    "entered-in-error",
}
REQUESTED_AT = datetime(2026, 1, 2, 16, 30, tzinfo=UTC)
FIELDS: dict[str, Any] = {
    "participant_id": "participant-1",
    "referring_organization": {
        "name": "Better Health Clinic",
        "npi": "1245319599",
        "identifier": {"type": "other", "system": "urn:oid:2.16.840.1.113883.19.5", "value": "BHC-7"},
    },
    "referring_clinician": {"name": {"family": "Water", "given": ["Jan"], "prefix": ["Dr."]}, "npi": "1234567893"},
    "reason": {"text": "Isolation after discharge", "code": "Z60.2", "system": "http://hl7.org/fhir/sid/icd-10-cm"},
    "priority": "urgent",
    "requested_at": REQUESTED_AT,
}
# the steps that lead to each status, with what each step needs
PATHS: dict[ReferralStatus, list[ReferralAction]] = {
    ReferralStatus.REQUESTED: [],
    ReferralStatus.RECEIVED: [ReferralAction.RECEIVE],
    ReferralStatus.ACCEPTED: [ReferralAction.RECEIVE, ReferralAction.ACCEPT],
    ReferralStatus.REJECTED: [ReferralAction.RECEIVE, ReferralAction.REJECT],
    ReferralStatus.IN_PROGRESS: [ReferralAction.RECEIVE, ReferralAction.ACCEPT, ReferralAction.START],
    ReferralStatus.COMPLETED: [
        ReferralAction.RECEIVE,
        ReferralAction.ACCEPT,
        ReferralAction.START,
        ReferralAction.COMPLETE,
    ],
    ReferralStatus.CANCELLED: [ReferralAction.RECEIVE, ReferralAction.CANCEL],
}
STEP = {
    ReferralAction.ACCEPT: {"specialist_id": "specialist-1"},
    ReferralAction.REJECT: {"reason": "Outside the program's service area"},
    ReferralAction.CANCEL: {"reason": "The participant moved away"},
    ReferralAction.COMPLETE: {
        "outcome_summary": "Six sessions; joined a weekly peer group and reports less isolation."
    },
}


def referral_in(status: ReferralStatus, **changes: Any) -> Referral:
    """A referral brought to ``status`` through the domain state machine (transitions one day apart)."""
    state = ReferralState()
    for day, action in enumerate(PATHS[status], 1):
        request = TransitionRequest(by="coordinator@peer.example.org", **STEP.get(action, {}))
        state = apply(state, action, request, REQUESTED_AT + timedelta(days=day))
    assert state.status is status
    return record(Referral, "referral-1", **{**FIELDS, **changes}, **state.model_dump())


def encounter(encounter_id: str, day: int, status: str = "finished") -> PeerEncounter:
    start = datetime(2026, 1, 10 + day, 15, 0, tzinfo=UTC)
    return record(
        PeerEncounter,
        encounter_id,
        participant_id="participant-1",
        specialist_id="specialist-1",
        start=start,
        end=start + timedelta(minutes=50) if status == "finished" else None,
        modality="in-person",
        support_categories=["emotional"] if status == "finished" else [],
        status=status,
    )


ENCOUNTERS = [encounter("encounter-2", 7), encounter("encounter-1", 0), encounter("encounter-3", 9, "cancelled")]


def check_valid(service_request: dict[str, Any], task: dict[str, Any]) -> None:
    ServiceRequest.model_validate(service_request)
    Task.model_validate(task)
    assert service_request["meta"]["profile"] == [SDOHCC + "SDOHCC-ServiceRequest"]
    assert task["meta"]["profile"] == [SDOHCC + "SDOHCC-TaskForReferralManagement"]


def test_golden_completed_referral_with_two_encounters():
    ctx = context()
    service_request, task = referral.to_fhir(referral_in(ReferralStatus.COMPLETED), ctx, ENCOUNTERS)
    check_valid(service_request, task)
    assert service_request["status"] == "completed"
    assert task["status"] == "completed"
    assert task["businessStatus"]["coding"][0] == {
        "system": BSER_STATUS,
        "code": "7.0",
        "display": "Service Request Fulfillment Completed",
    }
    assert task["focus"] == {"reference": f"ServiceRequest/{service_request['id']}"}
    assert task["owner"] == ctx.reference("specialist-role", "specialist-1")
    assert task["lastModified"] == (REQUESTED_AT + timedelta(days=4)).isoformat()
    references = [o["valueReference"] for o in task["output"] if "valueReference" in o]
    assert references == [ctx.reference("encounter", "encounter-1"), ctx.reference("encounter", "encounter-2")]
    assert task["output"][-1]["valueString"].startswith("Six sessions")
    assert_golden("referral-completed-servicerequest", service_request)
    assert_golden("referral-completed-task", task)


def test_golden_new_requested_referral():
    ctx = context()
    service_request, task = referral.to_fhir(referral_in(ReferralStatus.REQUESTED), ctx)
    check_valid(service_request, task)
    assert service_request["status"] == "active"
    assert service_request["performer"] == [ctx.reference("program", "program-1", "Harbor Peer Support Collective")]
    assert task["status"] == "requested"
    assert task["owner"] == service_request["performer"][0]
    assert task["lastModified"] == task["authoredOn"] == REQUESTED_AT.isoformat()
    assert "output" not in task and "statusReason" not in task
    assert_golden("referral-requested-servicerequest", service_request)
    assert_golden("referral-requested-task", task)


def test_clinician_and_clinic_are_carried_in_contained_resources():
    service_request, task = referral.to_fhir(referral_in(ReferralStatus.REQUESTED), context())
    role, practitioner, organization = service_request["contained"]
    assert service_request["requester"]["reference"] == f"#{role['id']}"
    assert role["practitioner"]["reference"] == f"#{practitioner['id']}"
    assert role["organization"]["reference"] == f"#{organization['id']}"
    assert practitioner["identifier"] == [{"system": NPI, "value": "1234567893"}]
    assert organization["identifier"][0] == {"system": NPI, "value": "1245319599"}
    assert task["requester"] == {
        "type": "Organization",
        "identifier": {"system": NPI, "value": "1245319599"},
        "display": "Better Health Clinic",
    }


def test_every_reachable_status_has_a_test_path():
    assert {target for _, target in TRANSITIONS.values()} | {ReferralStatus.REQUESTED} == set(PATHS)


@pytest.mark.parametrize("status", list(ReferralStatus))
def test_every_status_maps_to_a_task_status_and_a_bser_business_status(status: ReferralStatus):
    assert status in PATHS, f"no test path to {status.value}"
    service_request, task = referral.to_fhir(referral_in(status), context(), ENCOUNTERS)
    check_valid(service_request, task)
    assert task["status"] in TASK_STATUSES
    assert task["status"] == referral.CODES.task_status[status]
    [coding] = task["businessStatus"]["coding"]
    assert coding["system"] == BSER_STATUS and coding["code"] and coding["display"]
    assert service_request["status"] in {"active", "completed", "revoked"}
    if status in (ReferralStatus.REJECTED, ReferralStatus.CANCELLED):
        assert task["statusReason"]["text"] == STEP[PATHS[status][-1]]["reason"]
        assert service_request["status"] == "revoked"
    else:
        assert "statusReason" not in task
    assert ("output" in task) is (status is ReferralStatus.COMPLETED)


def test_a_code_table_without_a_status_is_refused():
    table = referral.CODES.model_dump()
    del table["task_status"]["cancelled"]
    with pytest.raises(ValueError, match="task_status has no entry for cancelled"):
        referral.ReferralCodes.model_validate(table)


def test_oracle_drops_task_output_while_generic_keeps_it():
    completed = referral_in(ReferralStatus.COMPLETED)
    _, generic = referral.to_fhir(completed, context("generic"), ENCOUNTERS)
    oracle_request, oracle = referral.to_fhir(completed, context("oracle"), ENCOUNTERS)
    assert len(generic["output"]) == 3
    assert "output" not in oracle
    check_valid(oracle_request, oracle)


def test_mapping_twice_is_byte_identical():
    completed = referral_in(ReferralStatus.COMPLETED)
    first = referral.to_fhir(completed, context(), ENCOUNTERS)
    again = referral.to_fhir(completed, context(), list(reversed(ENCOUNTERS)))
    assert [orjson.dumps(r) for r in first] == [orjson.dumps(r) for r in again]


# --- round trip ----------------------------------------------------------------------------------
VALID_NPIS = st.sampled_from(["1234567893", "1245319599", "1003000126", "1932102084"])
ZONES = st.sampled_from([UTC, timezone(timedelta(hours=-7)), timezone(timedelta(hours=5, minutes=30))])
organizations = st.builds(
    lambda name, npi, identifier: {"name": name, "npi": npi, "identifier": identifier},
    safe_text,
    st.none() | VALID_NPIS,
    st.none()
    | st.builds(
        lambda kind, system, value, assigner: {"type": kind, "system": system, "value": value, "assigner": assigner},
        st.sampled_from(["MR", "MA", "PI", "other"]),
        st.sampled_from(["urn:oid:2.16.840.1.113883.19.5", "https://clinic.example.org/ids"]),
        safe_text,
        st.none() | safe_text,
    ),
)
clinicians = st.builds(
    lambda name, prefix, npi: {"name": {**name, "prefix": prefix}, "npi": npi},
    names,
    st.lists(st.sampled_from(["Dr.", "Mx."]), max_size=1),
    st.none() | VALID_NPIS,
)
reasons = st.builds(
    lambda text, coded: {"text": text, **coded},
    safe_text,
    st.sampled_from(
        [
            {},
            {"code": "Z60.2"},
            {"code": "Z60.2", "system": "http://hl7.org/fhir/sid/icd-10-cm"},
            {"code": "422650009", "system": "http://snomed.info/sct"},
        ]
    ),
)
referral_fields = st.builds(
    lambda participant, org, clinician, reason, priority, at: {
        "participant_id": participant,
        "referring_organization": org,
        "referring_clinician": clinician,
        "reason": reason,
        "priority": priority,
        "requested_at": at,
    },
    ids,
    organizations,
    clinicians,
    reasons,
    st.sampled_from(["routine", "urgent", "asap", "stat"]),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2035, 12, 31), timezones=ZONES),
)


@settings(max_examples=60, deadline=None)
@given(referral_fields)
def test_round_trip_keeps_every_field_fhir_carries(fields: dict[str, Any]):
    original = record(Referral, "referral-9", **fields)
    ctx = context().knowing(("participant", original.participant_id))
    service_request, task = referral.to_fhir(original, ctx)
    back = referral.from_fhir(service_request, task, ctx)
    assert back.fields == ReferralFields.model_validate(original.model_dump(include=set(ReferralFields.model_fields)))
    assert back.status is ReferralStatus.REQUESTED
    # without the Task the clinic side still comes through the contained resources
    assert referral.from_fhir(service_request, None, ctx).fields == back.fields


# --- inbound from a clinic -------------------------------------------------------------------------
def clinic_request(ctx, **changes: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "id": "clinic-sr-1",
        "extension": [{"url": "http://clinic.example.org/fhir/StructureDefinition/queue", "valueString": "bh"}],
        "status": "active",
        "intent": "order",
        "subject": ctx.reference("participant", "participant-1"),
        "authoredOn": "2026-01-03T09:15:00-08:00",
        "requester": {
            "reference": "Practitioner/dr-water",
            "display": "Jan Water",
            "identifier": {"system": NPI, "value": "1234567893"},
        },
        "reasonCode": [{"text": "Isolation after discharge"}],
    }
    resource.update(changes)
    return {k: v for k, v in resource.items() if v is not None}


def clinic_task(**changes: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Task",
        "modifierExtension": [],
        "status": "requested",
        "intent": "order",
        "focus": {"reference": "https://ehr.example.org/fhir/ServiceRequest/clinic-sr-1"},
        "requester": {
            "reference": "Organization/bhc",
            "display": "Better Health Clinic",
            "identifier": {"system": "urn:oid:2.16.840.1.113883.19.5", "value": "BHC-7"},
        },
    }
    resource.update(changes)
    return {k: v for k, v in resource.items() if v is not None}


def known():
    return context().knowing(("participant", "participant-1"))


def test_clinic_service_request_with_unknown_extensions_and_sparse_elements():
    ctx = known()
    inbound = referral.from_fhir(clinic_request(ctx), clinic_task(), ctx)
    fields = inbound.fields
    assert fields.participant_id == "participant-1"
    assert fields.referring_clinician.name.family == "Water"
    assert fields.referring_clinician.name.given == ["Jan"]
    assert fields.referring_clinician.npi == "1234567893"
    assert fields.referring_organization.name == "Better Health Clinic"
    assert fields.referring_organization.identifier is not None
    assert fields.referring_organization.identifier.value == "BHC-7"
    assert fields.referring_organization.npi is None
    assert fields.reason.text == "Isolation after discharge" and fields.reason.code is None
    assert fields.priority.value == "routine"
    assert fields.requested_at == datetime(2026, 1, 3, 17, 15, tzinfo=UTC)
    assert inbound.status is ReferralStatus.REQUESTED


def test_clinic_practitioner_role_with_contained_organization_and_no_task():
    ctx = known()
    resource = clinic_request(
        ctx,
        contained=[
            {"resourceType": "Organization", "id": "org", "name": "Eastside Family Medicine"},
            {
                "resourceType": "PractitionerRole",
                "id": "role",
                "practitioner": {"display": "Sam Rivera"},
                "organization": {"reference": "#org"},
            },
        ],
        requester={"reference": "#role"},
        reasonCode=[{"coding": [{"system": "http://snomed.info/sct", "code": "422650009", "display": "Lonely"}]}],
        priority="asap",
    )
    inbound = referral.from_fhir(resource, None, ctx)
    assert inbound.fields.referring_organization.name == "Eastside Family Medicine"
    assert inbound.fields.referring_clinician.name.family == "Rivera"
    assert inbound.fields.reason.text == "Lonely" and inbound.fields.reason.code == "422650009"
    assert inbound.fields.priority.value == "asap"
    assert inbound.status is ReferralStatus.REQUESTED


def test_clinic_cancelling_its_task():
    ctx = known()
    task = clinic_task(status="cancelled", statusReason={"text": "Duplicate referral"})
    inbound = referral.from_fhir(clinic_request(ctx), task, ctx)
    assert inbound.status is ReferralStatus.CANCELLED
    assert inbound.status_reason == "Duplicate referral"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("draft", ReferralStatus.REQUESTED),
        ("requested", ReferralStatus.REQUESTED),
        ("cancelled", ReferralStatus.CANCELLED),
        ("entered-in-error", ReferralStatus.CANCELLED),
    ],
)
def test_status_from_clinic_task(status, expected):
    assert referral.status_from_task({"resourceType": "Task", "status": status}) is expected


@pytest.mark.parametrize("status", ["accepted", "completed", "in-progress", "", None])
def test_status_the_clinic_may_not_set_is_refused(status):
    with pytest.raises(MappingError) as caught:
        referral.status_from_task({"resourceType": "Task", "status": status})
    assert caught.value.element == "Task.status"


@pytest.mark.parametrize("authored", ["2026-01-03", "2026-01", "2026"])
def test_inbound_authored_on_at_date_precision_is_kept(authored):
    ctx = known()
    org = {"resourceType": "Organization", "id": "org", "name": "Better Health Clinic"}
    inbound = referral.from_fhir(clinic_request(ctx, contained=[org], authoredOn=authored), None, ctx)
    assert inbound.fields.authored_on == authored
    assert inbound.fields.requested_at.isoformat().startswith(authored)


@pytest.mark.parametrize(
    ("change", "element"),
    [
        ({"subject": None}, "ServiceRequest.subject"),
        ({"subject": {"reference": "Patient/someone-else"}}, "ServiceRequest.subject"),
        ({"authoredOn": None}, "ServiceRequest.authoredOn"),
        ({"authoredOn": "2026-13-40T00:00:00Z"}, "ServiceRequest.authoredOn"),
        # a time needs a zone in FHIR (a date alone is valid: see the test below)
        ({"authoredOn": "2026-01-03T09:15:00"}, "ServiceRequest.authoredOn"),
        ({"intent": None}, "ServiceRequest.intent"),
        ({"status": "completed"}, "ServiceRequest.status"),
        ({"reasonCode": None}, "ServiceRequest.reasonCode"),
        ({"requester": None}, "ServiceRequest.requester"),
        (
            {"requester": {"reference": "Organization/bhc", "display": "Better Health Clinic"}},
            "ServiceRequest.requester",
        ),
        ({"requester": {"reference": "#nowhere"}}, "ServiceRequest.requester"),
        ({"requester": {"reference": "Practitioner/x"}}, "ServiceRequest.requester.display"),
        (
            {"requester": {"display": "Jan Water", "identifier": {"system": NPI, "value": "1234567890"}}},
            "ServiceRequest.requester",
        ),
        ({"priority": "whenever"}, "ServiceRequest.priority"),
    ],
)
def test_invalid_inbound_service_request_names_the_element(change, element):
    ctx = known()
    # no Task: the organization comes from a contained Organization
    org = {"resourceType": "Organization", "id": "org", "name": "Better Health Clinic"}
    resource = clinic_request(ctx, contained=[org], **change)
    with pytest.raises(MappingError) as caught:
        referral.from_fhir(resource, None, ctx)
    assert caught.value.element == element


@pytest.mark.parametrize(
    ("change", "element"),
    [
        ({"status": "accepted"}, "Task.status"),
        ({"intent": None}, "Task.intent"),
        ({"focus": {"reference": "ServiceRequest/another"}}, "Task.focus"),
    ],
)
def test_invalid_inbound_task_names_the_element(change, element):
    ctx = known()
    with pytest.raises(MappingError) as caught:
        referral.from_fhir(clinic_request(ctx), clinic_task(**change), ctx)
    assert caught.value.element == element


def test_no_organization_anywhere_is_refused():
    ctx = known()
    with pytest.raises(MappingError) as caught:
        referral.from_fhir(clinic_request(ctx), None, ctx)
    assert caught.value.element == "ServiceRequest.requester"
    assert "organization" in caught.value.reason


def test_clinic_identifiers_of_the_order_travel_on_the_service_request():
    ctx = known()
    placer = {"system": "urn:oid:2.16.840.1.113883.19.5.99", "value": "ORD-1001"}
    resource = clinic_request(
        ctx, identifier=[placer, ctx.identifier("referral", "someone-else"), {"system": "urn:oid:1.2"}]
    )
    inbound = referral.from_fhir(resource, clinic_task(), ctx)
    assert [(i.type.value, i.system, i.value) for i in inbound.fields.identifiers] == [
        ("other", placer["system"], "ORD-1001")
    ]
    stored = record(Referral, "referral-1", **inbound.fields.model_dump())
    service_request, _ = referral.to_fhir(stored, ctx)
    assert service_request["identifier"] == [ctx.identifier("referral", "referral-1"), placer]
    assert referral.from_fhir(service_request, None, ctx).fields == inbound.fields


def test_the_same_clinic_identifier_twice_is_refused():
    ctx = known()
    placer = {"system": "urn:oid:2.16.840.1.113883.19.5.99", "value": "ORD-1001"}
    with pytest.raises(MappingError) as caught:
        referral.from_fhir(clinic_request(ctx, identifier=[placer, placer]), clinic_task(), ctx)
    assert caught.value.element == "ServiceRequest.identifier"


def test_a_completed_referrals_task_lists_the_outcome_scores_beside_the_sessions():
    from mappings.assessment import observation_id

    ctx = context()
    outcomes = [
        referral.OutcomeLink("assessment-1", "PHQ-9", True),
        referral.OutcomeLink("assessment-3", "PHQ-9", False),
        referral.OutcomeLink("assessment-2", "GAD-7", True),
    ]
    service_request, task = referral.to_fhir(referral_in(ReferralStatus.COMPLETED), ctx, ENCOUNTERS, (), outcomes)
    check_valid(service_request, task)
    scores = [o for o in task["output"] if o["type"]["coding"][0]["code"].endswith("-outcome")]
    assert [(o["type"]["coding"][0]["code"], o["valueReference"]) for o in scores] == [
        (
            "baseline-outcome",
            {
                "reference": f"Observation/{observation_id(ctx, 'assessment-1', 'total')}",
                "display": "PHQ-9: baseline outcome score",
            },
        ),
        (
            "latest-outcome",
            {
                "reference": f"Observation/{observation_id(ctx, 'assessment-3', 'total')}",
                "display": "PHQ-9: latest outcome score",
            },
        ),
        (
            "baseline-outcome",
            {
                "reference": f"Observation/{observation_id(ctx, 'assessment-2', 'total')}",
                "display": "GAD-7: baseline outcome score",
            },
        ),
    ]
    assert scores[0]["type"]["coding"][0]["system"] == "https://peer.example.org/ids/CodeSystem/referral-output"
    kinds = [o["type"]["coding"][0]["code"] for o in task["output"]]
    assert kinds.index("delivered-encounter") < kinds.index("baseline-outcome") < kinds.index("outcome-summary")
    _, open_task = referral.to_fhir(referral_in(ReferralStatus.IN_PROGRESS), ctx, ENCOUNTERS, (), outcomes)
    assert "output" not in open_task  # only a completed referral reports results
