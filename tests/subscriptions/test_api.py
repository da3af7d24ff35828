"""Subscriptions through the API in process, delivered to a real receiver on loopback: handshake,
events with their numbers for a referral's Task, filters, payload content, $status and $events, and
the refusals (OperationOutcome naming the element)."""

from __future__ import annotations

import httpx

from service.exchange.subscription_delivery import SubscriptionDelivery
from tests.factories import World

from .conftest import subscribe, subscription
from .receiver import Receiver, event_numbers, notification_type, parameter, status_of

FHIR = {"Content-Type": "application/fhir+json"}


async def _walk(client: httpx.AsyncClient, world: World, *actions: str) -> None:
    for action in actions:
        body = {"by": "coordinator@program"}
        if action == "accept":
            body["specialist_id"] = world.ids["specialist"]
        answer = await client.post(f"/peer/v1/referrals/{world.ids['referral']}/{action}", json=body)
        assert answer.status_code == 200, answer.text


async def test_handshake_then_events_numbered_in_order(
    client: httpx.AsyncClient, receiver: Receiver, delivery: SubscriptionDelivery
) -> None:
    world = await World(client).build()
    sid = await subscribe(client, subscription(receiver.url))
    await delivery.run_due()
    (handshake,) = receiver.of_type("handshake")
    assert handshake["type"] == "history"
    assert parameter(handshake, "events-since-subscription-start") == "0"
    assert receiver.headers[0]["Authorization"] == "Bearer subscriber-secret"
    assert (await client.get(f"/fhir/Subscription/{sid}")).json()["status"] == "active"

    await _walk(client, world, "receive", "accept")
    await delivery.run_due()
    (note,) = receiver.of_type("event-notification")
    assert event_numbers(note) == [1, 2]
    assert parameter(note, "events-since-subscription-start") == "2"
    status = status_of(note)
    assert status["meta"]["profile"] == [
        "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-status-r4"
    ]
    tasks = [e["resource"] for e in note["entry"][1:]]
    assert [t["resourceType"] for t in tasks] == ["Task", "Task"]
    assert [t["status"] for t in tasks] == ["received", "accepted"]

    answer = await client.get(f"/fhir/Subscription/{sid}/$status")
    assert answer.status_code == 200
    assert parameter(answer.json(), "events-since-subscription-start") == "2"
    assert parameter(answer.json(), "type") == "query-status"

    missed = await client.get(f"/fhir/Subscription/{sid}/$events", params={"eventsSinceNumber": "2"})
    assert missed.status_code == 200, missed.text
    assert notification_type(missed.json()) == "query-event"
    assert event_numbers(missed.json()) == [2]
    assert missed.json()["entry"][1]["resource"]["status"] == "accepted"
    await delivery.run_due()
    assert len(receiver.of_type("event-notification")) == 1  # sent once


async def test_filter_and_id_only(
    client: httpx.AsyncClient, receiver: Receiver, delivery: SubscriptionDelivery
) -> None:
    world = await World(client).build()
    await subscribe(client, subscription(receiver.url, filters=("Task?status=accepted",), content="id-only"))
    await delivery.run_due()
    await _walk(client, world, "receive", "accept", "start")
    await delivery.run_due()
    (note,) = receiver.of_type("event-notification")
    assert event_numbers(note) == [1]
    (focus,) = note["entry"][1:]
    assert "resource" not in focus
    assert focus["fullUrl"].split("/fhir/")[1].startswith("Task/")


async def test_empty_content_has_no_focus(
    client: httpx.AsyncClient, receiver: Receiver, delivery: SubscriptionDelivery
) -> None:
    world = await World(client).build()
    await subscribe(client, subscription(receiver.url, content="empty"))
    await delivery.run_due()
    await _walk(client, world, "receive")
    await delivery.run_due()
    (note,) = receiver.of_type("event-notification")
    assert len(note["entry"]) == 1
    (event,) = [p for p in status_of(note)["parameter"] if p["name"] == "notification-event"]
    assert [p["name"] for p in event["part"]] == ["event-number", "timestamp"]


async def test_failed_endpoint_retries_then_delivers(
    client: httpx.AsyncClient, receiver: Receiver, delivery: SubscriptionDelivery, database
) -> None:
    from sqlalchemy import select, update

    from service.store.tables import subscription_events

    world = await World(client).build()
    await subscribe(client, subscription(receiver.url))
    await delivery.run_due()
    receiver.status = 503
    await _walk(client, world, "receive")
    await delivery.run_due()
    async with database.read() as conn:
        (row,) = list(await conn.execute(select(subscription_events)))
    assert (row.state, row.attempts, row.last_error) == ("pending", 1, "endpoint answered 503")
    receiver.status = 200
    async with database.transaction() as conn:  # the backoff has passed
        await conn.execute(update(subscription_events).values(next_attempt_at=row.occurred_at))
    await delivery.run_due()
    async with database.read() as conn:
        (row,) = list(await conn.execute(select(subscription_events)))
    assert row.state == "sent"
    assert [event_numbers(b) for b in receiver.of_type("event-notification")] == [[1], [1]]


async def test_refusals_name_the_element(client: httpx.AsyncClient, receiver: Receiver) -> None:
    cases = [
        (
            {**subscription(receiver.url), "criteria": "http://example.org/SubscriptionTopic/none"},
            "Subscription.criteria",
        ),
        (subscription("http://example.org/hook"), "Subscription.channel.endpoint"),
        (subscription("ftp://127.0.0.1/hook"), "Subscription.channel.endpoint"),
        (subscription(receiver.url, filters=("Task?colour=red",)), "Subscription._criteria.extension"),
        (subscription(receiver.url, filters=("Encounter?status=finished",)), "Subscription._criteria.extension"),
        (subscription(receiver.url, content="everything"), "Subscription.channel._payload.extension"),
        ({**subscription(receiver.url), "status": "active"}, "Subscription.status"),
        ({**subscription(receiver.url), "channel": {"type": "websocket"}}, "Subscription.channel.type"),
    ]
    for body, expression in cases:
        answer = await client.post("/fhir/Subscription", json=body, headers=FHIR)
        assert answer.status_code == 400, (expression, answer.text)
        outcome = answer.json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert outcome["issue"][0]["expression"] == [expression]
    bad = await client.get("/fhir/Subscription/nope/$events")
    assert bad.status_code == 404


async def test_https_endpoint_accepted_and_crud(client: httpx.AsyncClient) -> None:
    sid = await subscribe(client, subscription("https://clinic.example.org/hook"))
    body = (await client.get(f"/fhir/Subscription/{sid}")).json()
    body["status"] = "off"
    answer = await client.put(f"/fhir/Subscription/{sid}", json=body, headers=FHIR)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "off"
    assert answer.json()["meta"]["versionId"] == "2"
    listed = (await client.get("/fhir/Subscription")).json()
    assert [e["resource"]["id"] for e in listed["entry"]] == [sid]
    assert (await client.delete(f"/fhir/Subscription/{sid}")).status_code == 204
    assert (await client.get(f"/fhir/Subscription/{sid}")).status_code == 404


async def test_the_subscriptions_own_retry_policy_dead_letters(
    client: httpx.AsyncClient, receiver: Receiver, delivery: SubscriptionDelivery, database, program
) -> None:
    from datetime import timedelta

    from sqlalchemy import select, update

    from service.store.tables import subscription_events

    retry = {"url": f"{program.identifier_system}/StructureDefinition/subscription-retry-hours", "valueUnsignedInt": 1}
    refused = subscription(receiver.url)
    refused["channel"]["extension"].append({**retry, "valueUnsignedInt": 0})
    answer = await client.post("/fhir/Subscription", json=refused, headers=FHIR)
    assert answer.status_code == 400
    assert answer.json()["issue"][0]["expression"] == ["Subscription.channel.extension"]

    world = await World(client).build()
    body = subscription(receiver.url)
    body["channel"]["extension"].append(retry)
    sid = await subscribe(client, body)
    await delivery.run_due()
    receiver.status = 503
    await _walk(client, world, "receive")
    await delivery.run_due()  # within the hour: kept for a retry (the deployment's horizon is 24 h)
    async with database.read() as conn:
        (row,) = list(await conn.execute(select(subscription_events)))
    assert row.state == "pending"
    async with database.transaction() as conn:  # two hours later
        earlier = row.occurred_at - timedelta(hours=2)
        await conn.execute(update(subscription_events).values(occurred_at=earlier, next_attempt_at=earlier))
    await delivery.run_due()
    async with database.read() as conn:
        (row,) = list(await conn.execute(select(subscription_events)))
    assert (row.state, row.attempts, row.last_error) == ("dead", 2, "endpoint answered 503")
    assert (await client.get(f"/fhir/Subscription/{sid}")).json()["status"] == "error"
    dead = await client.get(f"/fhir/Subscription/{sid}/$events")
    assert event_numbers(dead.json()) == [1]  # a dead-lettered event stays readable


async def test_an_ended_subscription_goes_off_and_gets_no_events(
    client: httpx.AsyncClient, receiver: Receiver, delivery: SubscriptionDelivery
) -> None:
    world = await World(client).build()
    sid = await subscribe(client, {**subscription(receiver.url), "end": "2026-01-01T00:00:00Z"})
    await delivery.run_due()  # the handshake activates it
    await delivery.run_due()  # its end has passed: off
    assert (await client.get(f"/fhir/Subscription/{sid}")).json()["status"] == "off"
    await _walk(client, world, "receive")
    await delivery.run_due()
    assert receiver.of_type("event-notification") == []
    status = await client.get(f"/fhir/Subscription/{sid}/$status")
    assert parameter(status.json(), "events-since-subscription-start") == "0"


async def test_changes_to_a_subscription_are_audited(client: httpx.AsyncClient, database) -> None:
    from sqlalchemy import select

    from service.store.tables import audit_entities, audit_log

    sid = await subscribe(client, subscription("https://clinic.example.org/hook"))
    body = (await client.get(f"/fhir/Subscription/{sid}")).json()
    assert (await client.put(f"/fhir/Subscription/{sid}", json=body, headers=FHIR)).status_code == 200
    assert (await client.delete(f"/fhir/Subscription/{sid}")).status_code == 204
    async with database.read() as conn:
        rows = await conn.execute(
            select(audit_log.c.subtype, audit_log.c.action)
            .join(audit_entities, audit_entities.c.seq == audit_log.c.seq)
            .where(audit_entities.c.ref == f"Subscription/{sid}")
            .order_by(audit_log.c.seq)
        )
        assert [tuple(r) for r in rows] == [("create", "C"), ("update", "U"), ("delete", "D")]
