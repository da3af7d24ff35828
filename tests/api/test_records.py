"""Create, read, update and list for every record type through /peer/v1."""

from datetime import timedelta

import pytest

from tests.factories import (
    MRN_SYSTEM,
    World,
    at,
    care_team_body,
    create,
    encounter_body,
    participant_body,
    specialist_body,
)

# path -> (a field to change, its new value)
CHANGES = {
    "specialists": ("weekly_capacity", 12),
    "participants": ("language", "es"),
    "care-team-members": ("role", "supervisor"),
    "encounters": ("location", "Library annex"),
    "notes": ("text", "Goal: work. Plan: resume."),
    "referrals": ("priority", "urgent"),
    "consents": ("categories", ["encounters"]),
    "goals": ("status", "active"),
}
ID_KEY = {
    "specialists": "specialist",
    "participants": "participant",
    "care-team-members": "care-team-member",
    "encounters": "encounter",
    "notes": "note",
    "referrals": "referral",
    "consents": "consent",
    "goals": "goal",
}


@pytest.mark.parametrize("path", list(CHANGES))
async def test_read_update_list_round_trip(client, path):
    world = await World(client).build()
    record_id = world.ids[ID_KEY[path]]

    read = await client.get(f"/peer/v1/{path}/{record_id}")
    assert read.status_code == 200
    assert read.headers["etag"] == 'W/"1"'
    original = read.json()
    assert original["version"] == 1 and original["created_at"] == original["updated_at"]

    field, value = CHANGES[path]
    changed = await client.patch(f"/peer/v1/{path}/{record_id}", json={field: value}, headers={"If-Match": 'W/"1"'})
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body[field] == value
    assert body["version"] == 2 and changed.headers["etag"] == 'W/"2"'
    assert body["created_at"] == original["created_at"] and body["updated_at"] > original["updated_at"]
    untouched = {k: v for k, v in original.items() if k not in (field, "version", "updated_at")}
    assert {k: body[k] for k in untouched} == untouched

    again = await client.get(f"/peer/v1/{path}/{record_id}")
    assert again.json() == body

    listed = await client.get(f"/peer/v1/{path}")
    assert listed.status_code == 200
    assert record_id in [item["id"] for item in listed.json()["items"]]


async def test_create_answers_201_with_location_and_etag(client):
    response = await client.post("/peer/v1/participants", json=participant_body())
    assert response.status_code == 201
    record = response.json()
    assert response.headers["location"] == f"/peer/v1/participants/{record['id']}"
    assert response.headers["etag"] == 'W/"1"'
    assert record["identifiers"][0] == {"type": "MR", "system": MRN_SYSTEM, "value": "MRN-1", "assigner": None}


async def test_frozen_fields_cannot_be_patched(client):
    world = await World(client).build()
    other = await create(client, "participants", participant_body(identifiers=[]))
    response = await client.patch(f"/peer/v1/encounters/{world.ids['encounter']}", json={"participant_id": other["id"]})
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"][-1] == "participant_id"


async def test_a_patch_that_breaks_an_invariant_is_refused_and_nothing_changes(client):
    world = await World(client).build()
    path = f"/peer/v1/encounters/{world.ids['encounter']}"
    before = (await client.get(path)).json()
    response = await client.patch(path, json={"end": (at(3) - timedelta(minutes=5)).isoformat()})
    assert response.status_code == 422
    assert "end is not after its start" in response.text
    assert (await client.get(path)).json() == before


async def test_list_paginates_with_a_cursor_and_filters_in_sql(client):
    specialist = await create(client, "specialists", specialist_body())
    ids = []
    for n in range(7):
        participant = await create(client, "participants", participant_body(identifiers=[]))
        ids.append(participant["id"])
        await create(
            client,
            "encounters",
            encounter_body(
                participant["id"],
                specialist["id"],
                start=at(n).isoformat(),
                end=(at(n) + timedelta(minutes=30)).isoformat(),
            ),
        )
    seen: list[str] = []
    url = "/peer/v1/participants?limit=3"
    pages = 0
    while url:
        page = (await client.get(url)).json()
        seen += [item["id"] for item in page["items"]]
        url = page["next"] and page["next"].removeprefix("http://peerlink.test")
        pages += 1
    assert seen == ids and pages == 3

    only = await client.get(f"/peer/v1/encounters?participant_id={ids[2]}")
    assert [e["participant_id"] for e in only.json()["items"]] == [ids[2]]

    window = await client.get(
        "/peer/v1/encounters", params={"start_from": at(3).isoformat(), "start_before": at(0).isoformat()}
    )
    starts = sorted(e["start"] for e in window.json()["items"])
    assert len(starts) == 3  # days 3, 2 and 1 ago; day 0 is excluded (exclusive bound)


async def test_inactive_specialist_cannot_hold_an_encounter(client):
    specialist = await create(client, "specialists", specialist_body(active=False))
    participant = await create(client, "participants", participant_body())
    response = await client.post("/peer/v1/encounters", json=encounter_body(participant["id"], specialist["id"]))
    assert response.status_code == 422
    assert "inactive" in response.json()["detail"]
    assert (await client.get("/peer/v1/encounters")).json()["items"] == []


async def test_expired_certification_blocks_new_encounters(client):
    from tests.factories import TODAY

    cert = {
        "state": "OR",
        "number": "X-1",
        "issued_on": str(TODAY - timedelta(days=800)),
        "expires_on": str(TODAY - timedelta(days=10)),
    }
    specialist = await create(client, "specialists", specialist_body(certification=cert))
    participant = await create(client, "participants", participant_body())
    response = await client.post("/peer/v1/encounters", json=encounter_body(participant["id"], specialist["id"]))
    assert response.status_code == 422
    assert "certification is not current" in response.json()["detail"]


async def test_encounter_status_machine_is_enforced_on_update(client):
    world = await World(client).build()
    path = f"/peer/v1/encounters/{world.ids['encounter']}"
    assert (await client.patch(path, json={"status": "planned"})).status_code == 409
    assert (await client.patch(path, json={"status": "entered-in-error"})).status_code == 200
    assert (await client.patch(path, json={"status": "finished"})).status_code == 409


async def test_goal_of_another_participant_cannot_be_addressed(client):
    world = await World(client).build()
    other = await create(client, "participants", participant_body(identifiers=[]))
    body = encounter_body(other["id"], world.ids["specialist"], goal_ids=[world.ids["goal"]])
    response = await client.post("/peer/v1/encounters", json=body)
    assert response.status_code == 422
    assert "goal" in response.json()["detail"]


async def test_care_team_member_can_be_an_outside_clinician(client):
    participant = await create(client, "participants", participant_body())
    member = await create(client, "care-team-members", care_team_body(participant["id"]))
    assert member["clinician"]["npi"] == "1234567893" and member["specialist_id"] is None


async def test_program_endpoint_names_the_tenant(client, program):
    response = await client.get("/peer/v1/program")
    assert response.status_code == 200
    assert response.json()["code"] == "demo" and response.json()["id"] == program.id
