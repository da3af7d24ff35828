"""The sandbox as a rest-hook subscriber (in process): the hook's header, what a notification must be,
and what is recorded from it (event numbers, focus, each Task's status from full-resource entries)."""

from __future__ import annotations

from typing import Any

import pytest

from service.sandbox.config import ADMIN_HEADER
from tests.sandbox.support import ADMIN_SECRET, ROOT

ADMIN = {ADMIN_HEADER: ADMIN_SECRET}
SUB = "http://gateway.test/fhir/Subscription/s1"


def notification(kind: str, since: int, events: list[tuple[str, str]], tasks: list[dict[str, Any]]) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {"name": "subscription", "valueReference": {"reference": SUB}},
        {"name": "type", "valueCode": kind},
        {"name": "events-since-subscription-start", "valueString": str(since)},
    ]
    for number, focus in events:
        parameters.append(
            {
                "name": "notification-event",
                "part": [
                    {"name": "event-number", "valueString": number},
                    {"name": "focus", "valueReference": {"reference": focus}},
                ],
            }
        )
    entries: list[dict[str, Any]] = [{"resource": {"resourceType": "Parameters", "parameter": parameters}}]
    entries += [{"fullUrl": f"http://gateway.test/fhir/Task/{t['id']}", "resource": t} for t in tasks]
    return {"resourceType": "Bundle", "type": "history", "entry": entries}


def task(status: str) -> dict[str, Any]:
    return {"resourceType": "Task", "id": "t1", "status": status, "identifier": [{"value": "referral-1"}]}


async def hook(ehr) -> tuple[str, dict[str, str]]:
    made = (await ehr.http.post("/sandbox/subscriber", headers=ADMIN)).json()
    name, value = made["header"].split(": ", 1)
    assert made["endpoint"] == f"{ROOT}/sandbox/notifications" and name == "Authorization"
    return made["endpoint"], {name: value}


async def test_the_hook_records_handshake_events_and_each_tasks_status(ehr):
    endpoint, header = await hook(ehr)
    for body in (
        notification("handshake", 0, [], []),
        notification(
            "event-notification", 2, [("1", "Task/t1"), ("2", "Task/t1")], [task("in-progress"), task("completed")]
        ),
        notification("heartbeat", 2, [], []),
    ):
        assert (await ehr.http.post(endpoint, json=body, headers=header)).status_code == 200
    got = (await ehr.http.get("/sandbox/subscriber", headers=ADMIN)).json()
    assert [n["type"] for n in got["notifications"]] == ["handshake", "event-notification", "heartbeat"]
    assert got["events"] == [1, 2]
    assert got["notifications"][1]["focus"] == ["Task/t1", "Task/t1"]
    assert got["notifications"][2]["events_since_subscription_start"] == "2"
    assert got["notifications"][0]["subscription"] == SUB
    assert got["tasks"] == {"t1": {"status": "completed", "identifier": ["referral-1"], "last_updated": None}}
    # a fresh hook forgets what was received, and the old header no longer opens it
    _, fresh = await hook(ehr)
    assert fresh != header
    assert (await ehr.http.post(endpoint, json=notification("heartbeat", 2, [], []), headers=header)).status_code == 401
    assert (await ehr.http.get("/sandbox/subscriber", headers=ADMIN)).json()["notifications"] == []


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        [],
        {"resourceType": "Bundle", "type": "transaction", "entry": []},
        {"resourceType": "Bundle", "type": "history", "entry": "nope"},
        {"resourceType": "Bundle", "type": "history", "entry": [{"resource": {"resourceType": "Task"}}]},
        notification("nonsense", 0, [], []),
        notification("event-notification", 1, [("one", "Task/t1")], []),
        {"resourceType": "Bundle", "type": "history", "entry": [{"resource": {"resourceType": "Parameters"}}]},
    ],
)
async def test_what_is_no_notification_is_refused_with_an_operation_outcome(ehr, body):
    endpoint, header = await hook(ehr)
    if isinstance(body, str):
        answer = await ehr.http.post(endpoint, content=body, headers={**header, "Content-Type": "application/json"})
    else:
        answer = await ehr.http.post(endpoint, json=body, headers=header)
    assert answer.status_code == 400 and answer.json()["resourceType"] == "OperationOutcome"
    assert (await ehr.http.get("/sandbox/subscriber", headers=ADMIN)).json()["notifications"] == []


async def test_the_hook_and_what_it_received_are_the_admins(ehr):
    assert (await ehr.http.post("/sandbox/subscriber")).status_code in (401, 403)
    assert (await ehr.http.get("/sandbox/subscriber")).status_code in (401, 403)
    endpoint, _ = await hook(ehr)
    answer = await ehr.http.post(endpoint, json=notification("handshake", 0, [], []))
    assert answer.status_code == 401 and answer.json()["resourceType"] == "OperationOutcome"
