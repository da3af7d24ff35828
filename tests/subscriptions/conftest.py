"""Fixtures of the subscription tests: a real rest-hook receiver on loopback, the delivery loop driven
by the test (the in-process app's lifespan does not run under the ASGI transport)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from service.exchange.subscription_delivery import SubscriptionDelivery
from service.settings import Settings
from service.store import Database

from .receiver import Receiver, running_receiver

TASK_TOPIC = "http://hl7.org/fhir/us/sdoh-clinicalcare/SubscriptionTopic/Task"
BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as found:
        yield found


@pytest.fixture
async def delivery(database: Database, settings: Settings) -> Any:
    one = SubscriptionDelivery(database, settings, "test-worker")
    yield one
    await one.aclose()


def subscription(
    endpoint: str,
    *,
    topic: str = TASK_TOPIC,
    filters: tuple[str, ...] = (),
    content: str = "full-resource",
    heartbeat: int | None = None,
    headers: tuple[str, ...] = ("Authorization: Bearer subscriber-secret",),
) -> dict[str, Any]:
    channel: dict[str, Any] = {
        "type": "rest-hook",
        "endpoint": endpoint,
        "payload": "application/fhir+json",
        "_payload": {"extension": [{"url": BACKPORT + "backport-payload-content", "valueCode": content}]},
        "header": list(headers),
        "extension": [{"url": BACKPORT + "backport-max-count", "valuePositiveInt": 10}],
    }
    if heartbeat is not None:
        channel["extension"].append({"url": BACKPORT + "backport-heartbeat-period", "valueUnsignedInt": heartbeat})
    body: dict[str, Any] = {
        "resourceType": "Subscription",
        "meta": {"profile": [BACKPORT + "backport-subscription"]},
        "status": "requested",
        "reason": "referral updates",
        "criteria": topic,
        "channel": channel,
    }
    if filters:
        body["_criteria"] = {
            "extension": [{"url": BACKPORT + "backport-filter-criteria", "valueString": f} for f in filters]
        }
    return body


async def subscribe(http: httpx.AsyncClient, body: dict[str, Any], headers: dict[str, str] | None = None) -> str:
    answer = await http.post(
        "/fhir/Subscription", json=body, headers={"Content-Type": "application/fhir+json", **(headers or {})}
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["status"] == "requested"
    return str(answer.json()["id"])
