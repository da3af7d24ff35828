"""The topics data file is checked when loaded, and filters match the projected resources as the
parameter types say (token, reference, date)."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from typing import Any

import pytest

from service.records.subscription_topics import DATA, Topic, catalog, matches, parse, parse_criteria

TASK = {
    "resourceType": "Task",
    "meta": {"lastUpdated": "2026-03-01T10:00:00.000Z"},
    "status": "completed",
    "intent": "order",
    "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]},
    "owner": {"reference": "Organization/peer-program"},
    "requester": {"reference": "https://clinic.example.org/fhir/PractitionerRole/pr-1"},
}


def _task_topic() -> Topic | None:
    return catalog().by_canonical("http://hl7.org/fhir/us/sdoh-clinicalcare/SubscriptionTopic/Task", "http://x")


def test_the_shipped_file_loads_with_every_topic_sourced() -> None:
    topics = catalog().topics
    assert set(topics) == {"sdoh-task", "service-request", "encounter", "document-reference", "outcome"}
    assert topics["outcome"].resources == ("QuestionnaireResponse", "Observation")
    assert topics["encounter"].canonical("https://peer.example.org/") == (
        "https://peer.example.org/fhir/SubscriptionTopic/encounter"
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("why"), "why is required"),
        (lambda d: d["topics"]["encounter"].update(filters=["colour"]), "unknown parameters"),
        (lambda d: d["topics"]["encounter"].update(canonical="http://x/y"), "one of them"),
        (lambda d: d["params"]["status"].update(type="number"), "needs a path and a type"),
        (lambda d: d["topics"]["outcome"].pop("source"), "needs source and why"),
    ],
)
def test_a_bad_file_is_refused(change: Callable[[dict[str, Any]], object], message: str) -> None:
    data = tomllib.loads(DATA.read_text())
    change(data)
    with pytest.raises(ValueError, match=message):
        parse(data)


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        ("Task?status=completed", True),
        ("Task?status=cancelled,completed", True),
        ("Task?status=in-progress", False),
        ("Task?code=fulfill", True),
        ("Task?code=http://hl7.org/fhir/CodeSystem/task-code|fulfill", True),
        ("Task?code=other|fulfill", False),
        ("Task?owner=Organization/peer-program", True),
        ("Task?requester=PractitionerRole/pr-1", True),
        ("Task?requester=PractitionerRole/pr-2", False),
        ("Task?_lastUpdated=ge2026-03-01T00:00:00Z", True),
        ("Task?_lastUpdated=lt2026-03-01T00:00:00Z", False),
        ("Task?status=completed&owner=Organization/other", False),
    ],
)
def test_filters(criteria: str, expected: bool) -> None:
    topic = _task_topic()
    assert topic is not None
    assert matches(topic, parse_criteria(topic, criteria), TASK) is expected


def test_the_gravity_trigger_leaves_out_drafts_and_other_intents() -> None:
    topic = _task_topic()
    assert topic is not None
    assert matches(topic, [], TASK)
    assert not matches(topic, [], {**TASK, "status": "draft"})
    assert not matches(topic, [], {**TASK, "intent": "plan"})
    assert not matches(topic, [], {**TASK, "resourceType": "ServiceRequest"})


@pytest.mark.parametrize(
    "criteria",
    ["status=completed", "Encounter?status=x", "Task?", "Task?colour=red", "Task?status=", "Task?_lastUpdated=soon"],
)
def test_bad_criteria(criteria: str) -> None:
    topic = _task_topic()
    assert topic is not None
    with pytest.raises(ValueError):
        parse_criteria(topic, criteria)
