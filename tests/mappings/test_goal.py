"""Recovery goal <-> Goal (US Core Goal)."""

from datetime import timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mappings import goal
from mappings.context import MappingError
from mappings.models import Goal as FhirGoal
from service.domain import Goal, GoalFields, GoalStatus
from service.domain.goal import GoalDomain
from tests.mappings.support import assert_golden, context, past_dates, record, safe_text

FULL = {
    "participant_id": "participant-1",
    "description": "Move into my own apartment before winter, in my own words.",
    "domain": "housing",
    "start_date": "2025-09-01",
    "target_date": "2025-12-01",
    "status": "achieved",
}
SUBJECT = {"reference": "Patient/whatever"}


def ctx():
    return context().knowing(("participant", "participant-1"))


def test_golden_goal():
    resource = goal.to_fhir(record(Goal, "goal-1", **FULL), ctx())
    FhirGoal.model_validate(resource)
    assert resource["meta"]["profile"] == ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-goal"]
    assert resource["lifecycleStatus"] == "completed"
    assert resource["achievementStatus"]["coding"][0]["code"] == "achieved"
    assert resource["description"] == {"text": FULL["description"]}
    assert resource["subject"] == ctx().reference("participant", "participant-1")
    assert resource["target"] == [{"dueDate": "2025-12-01"}] and resource["startDate"] == "2025-09-01"
    categories = [c["coding"][0]["code"] for c in resource["category"]]
    assert categories == ["housing", "housing-instability"]
    assert_golden("goal", resource)


@pytest.mark.parametrize(
    ("status", "lifecycle"),
    [("proposed", "proposed"), ("active", "active"), ("on-hold", "on-hold"), ("cancelled", "cancelled")],
)
def test_lifecycle_status(status, lifecycle):
    resource = goal.to_fhir(record(Goal, "goal-1", **{**FULL, "status": status}), ctx())
    assert resource["lifecycleStatus"] == lifecycle
    assert "achievementStatus" not in resource


def test_two_overlays_give_different_valid_output():
    item = record(Goal, "goal-1", **FULL)
    generic, epic = goal.to_fhir(item, ctx()), goal.to_fhir(item, context("epic"))
    assert epic["meta"]["profile"] == ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-goal|3.1.1"]
    assert generic["meta"]["profile"] != epic["meta"]["profile"]
    for resource in (generic, epic):
        FhirGoal.model_validate(resource)


def test_mapping_twice_is_byte_identical():
    item = record(Goal, "goal-1", **FULL)
    assert orjson.dumps(goal.to_fhir(item, ctx())) == orjson.dumps(goal.to_fhir(item, ctx()))


goals = st.builds(
    lambda description, domain, start, days, status, has_start, has_target: {
        "participant_id": "participant-1",
        "description": description,
        "domain": domain,
        "start_date": start if has_start else None,
        "target_date": start + timedelta(days=days) if has_target else None,
        "status": status,
    },
    safe_text,
    st.sampled_from(list(GoalDomain)),
    past_dates,
    st.integers(min_value=0, max_value=900),
    st.sampled_from(list(GoalStatus)),
    st.booleans(),
    st.booleans(),
)


@settings(max_examples=60, deadline=None)
@given(goals)
def test_round_trip_keeps_every_field(fields: dict[str, Any]):
    item = record(Goal, "goal-9", **fields)
    back = goal.from_fhir(goal.to_fhir(item, ctx()), ctx())
    assert back == GoalFields.model_validate(item.model_dump(include=set(GoalFields.model_fields)))


def test_hospital_goal_with_unknown_extensions_and_sparse_elements():
    context_ = context().knowing(("participant", "participant-1"))
    resource = {
        "resourceType": "Goal",
        "id": "hosp-goal",
        "extension": [{"url": "http://example.org/fhir/StructureDefinition/unknown", "valueString": "x"}],
        "lifecycleStatus": "accepted",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes",
                        "code": "employment-status",
                    }
                ]
            }
        ],
        "description": {"coding": [{"system": "http://snomed.info/sct", "code": "1", "display": "Find a job"}]},
        "subject": context_.reference("participant", "participant-1"),
    }
    fields = goal.from_fhir(resource, context_)
    assert fields.participant_id == "participant-1"
    assert (fields.status, fields.domain, fields.description) == (
        GoalStatus.ACTIVE,
        GoalDomain.EMPLOYMENT,
        "Find a job",
    )
    assert (fields.start_date, fields.target_date) == (None, None)


def test_completed_but_not_achieved_is_cancelled():
    context_ = ctx()
    resource = goal.to_fhir(record(Goal, "goal-1", **FULL), context_)
    resource["achievementStatus"] = {
        "coding": [{"system": "http://terminology.hl7.org/CodeSystem/goal-achievement", "code": "not-achieved"}]
    }
    assert goal.from_fhir(resource, context_).status is GoalStatus.CANCELLED


@pytest.mark.parametrize(
    ("change", "element"),
    [
        ({"lifecycleStatus": "entered-in-error"}, "Goal.lifecycleStatus"),
        ({"lifecycleStatus": "sleeping"}, "Goal.lifecycleStatus"),
        ({"subject": None}, "Goal.subject"),
        ({"subject": {"reference": "Patient/unknown"}}, "Goal.subject"),
        ({"description": {}}, "Goal.description"),
        ({"startDate": "2025-02-30"}, "Goal.startDate"),
        ({"startDate": "2025-03-01", "target": [{"dueDate": "2025-01-01"}]}, "Goal.target.dueDate"),
        ({"startDate": "2025-03"}, "Goal (start_date)"),
    ],
)
def test_invalid_inbound_goal_names_the_element(change, element):
    context_ = ctx()
    resource = {
        "resourceType": "Goal",
        "lifecycleStatus": "active",
        "description": {"text": "Reconnect with my sister"},
        "subject": context_.reference("participant", "participant-1"),
    }
    resource.update(change)
    resource = {k: v for k, v in resource.items() if v is not None}
    with pytest.raises(MappingError) as caught:
        goal.from_fhir(resource, context_)
    assert caught.value.element == element
