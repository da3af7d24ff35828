"""Referral transitions as explicit actions, legal and illegal, through the API."""

import pytest

from service.domain.referral import TRANSITIONS, ReferralAction, ReferralStatus
from tests.factories import World, create, specialist_body

# The shortest action path that brings a new referral into each status.
PATH_TO = {
    ReferralStatus.REQUESTED: [],
    ReferralStatus.RECEIVED: ["receive"],
    ReferralStatus.ACCEPTED: ["receive", "accept"],
    ReferralStatus.REJECTED: ["receive", "reject"],
    ReferralStatus.IN_PROGRESS: ["receive", "accept", "start"],
    ReferralStatus.COMPLETED: ["receive", "accept", "start", "complete"],
    ReferralStatus.CANCELLED: ["cancel"],
}


def _body(action: str, specialist_id: str) -> dict[str, str]:
    body = {"by": "coordinator@program"}
    if action in ("reject", "cancel"):
        body["reason"] = "participant moved out of the service area"
    if action == "accept":
        body["specialist_id"] = specialist_id
    if action == "complete":
        body["outcome_summary"] = "Engaged in six sessions."
    return body


async def _walk(client, world, actions):
    referral_id = world.ids["referral"]
    for action in actions:
        response = await client.post(
            f"/peer/v1/referrals/{referral_id}/{action}", json=_body(action, world.ids["specialist"])
        )
        assert response.status_code == 200, response.text
    return referral_id


@pytest.mark.parametrize("status", list(ReferralStatus))
@pytest.mark.parametrize("action", list(ReferralAction))
async def test_every_action_from_every_status(client, status, action):
    world = await World(client).build()
    referral_id = await _walk(client, world, PATH_TO[status])
    before = (await client.get(f"/peer/v1/referrals/{referral_id}")).json()
    assert before["status"] == status.value

    response = await client.post(
        f"/peer/v1/referrals/{referral_id}/{action.value}", json=_body(action.value, world.ids["specialist"])
    )
    sources, target = TRANSITIONS[action]
    if status in sources:
        assert response.status_code == 200, response.text
        after = response.json()
        assert after["status"] == target.value
        assert after["version"] == before["version"] + 1
        last = after["transitions"][-1]
        assert (last["from_status"], last["to_status"], last["by"]) == (
            status.value,
            target.value,
            "coordinator@program",
        )
    else:
        assert response.status_code == 409
        assert response.headers["content-type"] == "application/problem+json"
        assert (await client.get(f"/peer/v1/referrals/{referral_id}")).json() == before


async def test_full_loop_keeps_who_when_why(client):
    world = await World(client).build()
    referral_id = await _walk(client, world, PATH_TO[ReferralStatus.COMPLETED])
    referral = (await client.get(f"/peer/v1/referrals/{referral_id}")).json()
    assert [t["action"] for t in referral["transitions"]] == ["receive", "accept", "start", "complete"]
    assert referral["assigned_specialist_id"] == world.ids["specialist"]
    assert referral["outcome_summary"] == "Engaged in six sessions."
    assert all(t["at"] for t in referral["transitions"])


async def test_reject_without_reason_is_refused(client):
    world = await World(client).build()
    referral_id = await _walk(client, world, ["receive"])
    response = await client.post(f"/peer/v1/referrals/{referral_id}/reject", json={"by": "x"})
    assert response.status_code == 422
    assert "reason" in response.json()["detail"]


async def test_accept_with_an_inactive_or_unknown_specialist_is_refused(client):
    world = await World(client).build()
    referral_id = await _walk(client, world, ["receive"])
    inactive = await create(client, "specialists", specialist_body(active=False))
    for specialist_id in (inactive["id"], "no-such-specialist"):
        response = await client.post(
            f"/peer/v1/referrals/{referral_id}/accept", json={"by": "x", "specialist_id": specialist_id}
        )
        assert response.status_code == 422
    assert (await client.get(f"/peer/v1/referrals/{referral_id}")).json()["status"] == "received"


async def test_closed_referral_cannot_be_edited(client):
    world = await World(client).build()
    referral_id = await _walk(client, world, ["cancel"])
    response = await client.patch(f"/peer/v1/referrals/{referral_id}", json={"priority": "stat"})
    assert response.status_code == 409


async def test_status_is_not_a_patchable_field(client):
    world = await World(client).build()
    response = await client.patch(f"/peer/v1/referrals/{world.ids['referral']}", json={"status": "completed"})
    assert response.status_code == 422
