"""A subscriber gets only what it may read: its scopes decide which topics it may subscribe to, its
data boundary (consents) which events it gets; a consent revoked between the event and its sending
stops the focus going out (the event still goes, without it, so the numbers have no gap)."""

from __future__ import annotations

import httpx

from service.exchange.subscription_delivery import SubscriptionDelivery
from service.settings import Settings
from tests.conftest import BASE_URL, token_headers
from tests.factories import World, consent_body, create, encounter_body, participant_body

from .conftest import subscribe, subscription
from .receiver import Receiver, event_numbers, status_of

HOSPITAL = "urn:oid:2.16.840.1.113883.3.7001|general-hospital"
ENCOUNTER_TOPIC = f"{BASE_URL}/fhir/SubscriptionTopic/encounter"


async def test_events_stay_in_the_boundary_and_a_revocation_stops_the_focus(
    client: httpx.AsyncClient, database, program, receiver: Receiver, delivery: SubscriptionDelivery
) -> None:
    world = await World(client).build()
    consented, specialist = world.ids["participant"], world.ids["specialist"]
    other = (
        await create(
            client, "participants", participant_body(name={"family": "Other", "given": ["Sam"]}, identifiers=[])
        )
    )["id"]
    recipient = {
        "name": "General Hospital",
        "identifier": {"type": "other", "system": HOSPITAL.split("|")[0], "value": "general-hospital"},
    }
    consent = (
        await create(client, "consents", consent_body(consented, recipient=recipient, categories=["encounters"]))
    )["id"]
    hospital = await token_headers(client, database, program, "hospital", "system/*.rs", organization=HOSPITAL)
    sid = await subscribe(client, subscription(receiver.url, topic=ENCOUNTER_TOPIC), hospital)
    await delivery.run_due()
    assert len(receiver.of_type("handshake")) == 1

    seen = (await create(client, "encounters", encounter_body(consented, specialist)))["id"]
    await create(client, "encounters", encounter_body(other, specialist))  # outside the boundary: no event
    await delivery.run_due()
    (first,) = receiver.of_type("event-notification")
    assert event_numbers(first) == [1]
    (entry,) = first["entry"][1:]
    assert entry["resource"]["resourceType"] == "Encounter"
    own = await client.get(f"/fhir/Encounter/{entry['resource']['id']}", headers=hospital)
    assert own.status_code == 200  # what went out is what the hospital may read
    assert seen  # the session recorded for the consented participant

    await create(client, "encounters", encounter_body(consented, specialist))  # event 2, consent still valid
    revoked = await client.post(f"/peer/v1/consents/{consent}/revoke")
    assert revoked.status_code == 200, revoked.text
    await delivery.run_due()
    second = receiver.of_type("event-notification")[1]
    assert event_numbers(second) == [2]
    assert len(second["entry"]) == 1  # the focus is withheld: consent is checked again at send time
    (event,) = [p for p in status_of(second)["parameter"] if p["name"] == "notification-event"]
    assert "focus" not in [p["name"] for p in event["part"]]

    await create(client, "encounters", encounter_body(consented, specialist))  # after revocation: no event
    await delivery.run_due()
    assert len(receiver.of_type("event-notification")) == 2
    missed = await client.get(
        f"/fhir/Subscription/{sid}/$events",
        headers=hospital,
    )
    assert event_numbers(missed.json()) == [1, 2]
    assert len(missed.json()["entry"]) == 1  # $events passes the same decision: nothing of the revoked participant

    # what went out before the revocation stays in the participant's accounting of disclosures
    report = (await client.get(f"/peer/v1/participants/{consented}/disclosures")).json()
    sent = [d for d in report["disclosures"] if d["interaction"] == "sent in a subscription notification"]
    assert len(sent) == 1
    assert sent[0]["recipient_organization"] == HOSPITAL
    assert sent[0]["resources"] == [f"Encounter/{entry['resource']['id']}"]
    other_report = (await client.get(f"/peer/v1/participants/{other}/disclosures")).json()
    assert [d for d in other_report["disclosures"] if d["interaction"] == "sent in a subscription notification"] == []


async def test_a_client_subscribes_only_to_what_its_scopes_read(
    client: httpx.AsyncClient, database, program, receiver: Receiver
) -> None:
    narrow = await token_headers(client, database, program, "narrow", "system/Encounter.rs", organization=HOSPITAL)
    answer = await client.post(
        "/fhir/Subscription",
        json=subscription(receiver.url),
        headers={**narrow, "Content-Type": "application/fhir+json"},
    )
    assert answer.status_code == 403, answer.text
    assert answer.json()["issue"][0]["expression"] == ["Subscription.criteria"]
    sid = await subscribe(client, subscription(receiver.url, topic=ENCOUNTER_TOPIC), narrow)
    assert (await client.get(f"/fhir/Subscription/{sid}", headers=narrow)).status_code == 200
    # another client does not see it
    other = await token_headers(client, database, program, "other", "system/*.rs", organization=HOSPITAL)
    assert (await client.get(f"/fhir/Subscription/{sid}", headers=other)).status_code == 404
    assert (await client.delete(f"/fhir/Subscription/{sid}", headers=other)).status_code == 404


async def test_heartbeat_and_dead_letter(
    client: httpx.AsyncClient, database, settings: Settings, receiver: Receiver
) -> None:
    from sqlalchemy import select, update

    from service.store.tables import subscription_events, subscriptions

    strict = settings.model_copy(update={"subscription_retry_horizon_seconds": 0.001})
    delivery = SubscriptionDelivery(database, strict, "strict-worker")
    try:
        world = await World(client).build()
        sid = await subscribe(client, subscription(receiver.url, heartbeat=1))
        await delivery.run_due()
        async with database.transaction() as conn:
            await conn.execute(update(subscriptions).values(last_sent_at=None))  # the period has passed
        await delivery.run_due()
        (beat,) = receiver.of_type("heartbeat")
        assert len(beat["entry"]) == 1

        receiver.status = 500
        answer = await client.post(f"/peer/v1/referrals/{world.ids['referral']}/receive", json={"by": "c"})
        assert answer.status_code == 200
        await delivery.run_due()
        async with database.read() as conn:
            (event,) = list(await conn.execute(select(subscription_events)))
        assert (event.state, event.last_error) == ("dead", "endpoint answered 500")
        read = (await client.get(f"/fhir/Subscription/{sid}")).json()
        assert read["status"] == "error"
        assert "dead-lettered" in read["error"]
    finally:
        await delivery.aclose()


async def test_capability_statement_lists_the_topics(client: httpx.AsyncClient) -> None:
    statement = (await client.get("/fhir/metadata")).json()
    (resource,) = [r for r in statement["rest"][0]["resource"] if r["type"] == "Subscription"]
    topics = {e["valueCanonical"] for e in resource["extension"]}
    assert "http://hl7.org/fhir/us/sdoh-clinicalcare/SubscriptionTopic/Task" in topics
    assert ENCOUNTER_TOPIC in topics
    assert {o["name"] for o in resource["operation"]} == {"status", "events"}
