"""`peerlink sandbox scenario referral-loop [--via poll|subscription]`.

``poll`` (the default): the clinic learns the referral closed by reading its Task at the EHR, which
PeerLink updated. ``subscription``: first the sandbox hospital (PeerLink's SMART backend client
``sandbox-hospital``) subscribes at PeerLink's FHIR API to the Gravity Task topic, full-resource
payload, rest-hook endpoint = the sandbox's ``/sandbox/notifications`` (``service.sandbox.subscriber``),
and waits for the handshake; the loop runs; then it waits for the event-notification carrying
PeerLink's Task for the referral as completed, checks the event numbers are 1..n without a gap, and
waits for a heartbeat counting them all (``--heartbeat``, default 5 s).
The subscription is deleted at the end.
"""

from __future__ import annotations

from enum import StrEnum
from functools import partial
from typing import Annotated, Any

import httpx
import typer

from service.auth.backend_client import fetch_token, private_key_file
from service.settings import get_settings

from .pairing import HOSPITAL_CLIENT
from .scenarios import (
    Gateway,
    Loop,
    Sandbox,
    StepFailed,
    Timeout,
    referral_loop,
    run_scenario,
    scenario_app,
)

TASK_TOPIC = "http://hl7.org/fhir/us/sdoh-clinicalcare/SubscriptionTopic/Task"
BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
HEARTBEAT_SECONDS = 5
"""The heartbeat period the scenario asks for (short, so that it sees one)."""


class Via(StrEnum):
    poll = "poll"
    subscription = "subscription"


def subscription_body(endpoint: str, header: str, heartbeat: int = HEARTBEAT_SECONDS) -> dict[str, Any]:
    return {
        "resourceType": "Subscription",
        "meta": {"profile": [BACKPORT + "backport-subscription"]},
        "status": "requested",
        "reason": "the sandbox clinic follows its referrals' Tasks instead of polling",
        "criteria": TASK_TOPIC,
        "channel": {
            "type": "rest-hook",
            "endpoint": endpoint,
            "payload": "application/fhir+json",
            "_payload": {"extension": [{"url": BACKPORT + "backport-payload-content", "valueCode": "full-resource"}]},
            "header": [header],
            "extension": [
                {"url": BACKPORT + "backport-heartbeat-period", "valueUnsignedInt": heartbeat},
                {"url": BACKPORT + "backport-max-count", "valuePositiveInt": 20},
            ],
        },
    }


async def hospital_client(loop: Loop) -> httpx.AsyncClient:
    settings = get_settings()
    base = str(loop.gateway.base_url).rstrip("/")
    key = private_key_file(settings.keys_dir / "sandbox-hospital-client.pem")
    token = (await fetch_token(f"{base}/auth/token", HOSPITAL_CLIENT, key))["access_token"]
    return httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}, timeout=30
    )


def gapless(numbers: list[int]) -> bool:
    return bool(numbers) and sorted(set(numbers)) == list(range(1, max(numbers) + 1))


async def by_subscription(loop: Loop, heartbeat: int = HEARTBEAT_SECONDS) -> None:
    loop.step(f"the sandbox hospital ({HOSPITAL_CLIENT}) subscribes at PeerLink to the Gravity Task topic")
    hook = await loop.admin("POST", "/sandbox/subscriber")
    hospital = await hospital_client(loop)
    try:
        created = await loop.call(
            hospital,
            "POST",
            "/fhir/Subscription",
            json=subscription_body(hook["endpoint"], hook["header"], heartbeat),
            headers={"Content-Type": "application/fhir+json"},
        )
        path = f"/fhir/Subscription/{created['id']}"

        async def active() -> dict[str, Any] | None:
            found: dict[str, Any] = await loop.call(hospital, "GET", path)
            if found.get("status") == "error":
                raise StepFailed(f"Subscription/{created['id']} went to error: {found.get('error')}")
            received = await loop.admin("GET", "/sandbox/subscriber")
            handshake = any(n["type"] == "handshake" for n in received["notifications"])
            return found if found.get("status") == "active" and handshake else None

        await loop.until("the handshake at the sandbox's rest-hook", active)
        loop.done(f"Subscription/{created['id']} active; the handshake reached {hook['endpoint']}")

        async def completed(looped: Loop, sent: dict[str, Any], referral: dict[str, Any], _: list[str]) -> None:
            looped.step("the clinic learns by notification that PeerLink's Task completed (no polling)")

            async def closed() -> dict[str, Any] | None:
                received: dict[str, Any] = await looped.admin("GET", "/sandbox/subscriber")
                done = [
                    task_id
                    for task_id, task in received["tasks"].items()
                    if referral["id"] in task["identifier"] and task["status"] == "completed"
                ]
                return {**received, "task_id": done[0]} if done else None

            received = await looped.until("the event-notification of the completed Task", closed)
            numbers = received["events"]
            if not gapless(numbers):
                raise StepFailed(f"the event numbers received are not 1..n without a gap: {numbers}")
            kinds = sorted({n["type"] for n in received["notifications"]})
            looped.done(
                f"Task/{received['task_id']} status completed; events {min(numbers)}..{max(numbers)} "
                f"without a gap; notifications: {', '.join(kinds)}"
            )
            looped.step(f"a heartbeat follows while nothing moves (every {heartbeat} s)")
            seen = len(received["notifications"])

            async def beat() -> dict[str, Any] | None:
                later = (await looped.admin("GET", "/sandbox/subscriber"))["notifications"][seen:]
                return next((n for n in later if n["type"] == "heartbeat"), None)

            found = await looped.until("a heartbeat", beat)
            counted = found["events_since_subscription_start"]
            if counted != str(max(numbers)):
                raise StepFailed(f"the heartbeat counts {counted} events, not {max(numbers)}")
            looped.done(f"heartbeat: {counted} events since the subscription started")

        await referral_loop(loop, completed)
    finally:
        if "path" in locals():
            await hospital.delete(path)
        await hospital.aclose()


ViaOption = Annotated[Via, typer.Option(help="How the clinic learns the referral closed: poll its Task, or subscribe.")]


@scenario_app.command("referral-loop")
def referral_loop_command(
    gateway: Gateway = None,
    sandbox: Sandbox = "http://127.0.0.1:9090",
    timeout: Timeout = 60.0,
    via: ViaOption = Via.poll,
    heartbeat: Annotated[int, typer.Option(min=1, help="With --via subscription: the heartbeat period, seconds.")] = (
        HEARTBEAT_SECONDS
    ),
) -> None:
    """Clinic referral -> poll -> accept -> two sessions -> delivered -> the clinic's Task completed
    (read at the EHR, or notified through a Subscription at PeerLink with ``--via subscription``)."""
    scenario = partial(by_subscription, heartbeat=heartbeat) if via is Via.subscription else referral_loop
    run_scenario(scenario, gateway, sandbox, timeout)
