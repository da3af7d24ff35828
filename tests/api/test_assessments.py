"""Outcome assessments over the peer API: record and score, correct by amendment, outcomes, what is due."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.factories import World, at

PHQ9_ITEMS = ["44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3", "44260-8"]
GAD7_ITEMS = ["69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7"]


def listed(answers: dict[str, int]) -> list[dict[str, Any]]:
    return [{"link_id": link_id, "value": value} for link_id, value in answers.items()]


def phq9(values: list[int], **overrides: int) -> dict[str, int]:
    return dict(zip(PHQ9_ITEMS, values, strict=True)) | overrides


def body(world: World, answers: dict[str, int], days_ago: int = 3, **overrides: Any) -> dict[str, Any]:
    content: dict[str, Any] = {
        "participant_id": world.ids["participant"],
        "instrument": "phq-9",
        "answers": listed(answers),
        "administered_by": "peer-specialist",
        "specialist_id": world.ids["specialist"],
        "encounter_id": world.ids["encounter"],
        "completed_at": at(days_ago).isoformat(),
    }
    content.update(overrides)
    return content


async def test_record_read_list_and_amend(client):
    world = await World(client).build()
    created = await client.post("/peer/v1/assessments", json=body(world, phq9([2, 2, 2, 2, 2, 2, 2, 1, 1])))
    assert created.status_code == 201, created.text
    record = created.json()
    assert (record["total"], record["band"], record["instrument_version"]) == (16, "moderately-severe", "1.0.0")
    assert record["flags"] == ["self-harm-thoughts"] and record["status"] == "final"
    path = created.headers["location"]
    assert path == f"/peer/v1/assessments/{record['id']}" and created.headers["etag"] == 'W/"1"'
    assert (await client.get(path)).json() == record

    amended = await client.post(
        f"{path}/amend",
        json={k: v for k, v in body(world, phq9([0] * 9)).items() if k not in ("participant_id", "instrument")},
        headers={"If-Match": 'W/"1"'},
    )
    assert amended.status_code == 201, amended.text
    fix = amended.json()
    assert (fix["status"], fix["amends_id"], fix["total"], fix["flags"]) == ("amended", record["id"], 0, [])
    assert (await client.get(path)).json() == record  # the original is never edited
    again = await client.post(
        f"{path}/amend",
        json={k: v for k, v in fix.items() if k in ("answers", "administered_by", "specialist_id", "completed_at")},
    )
    assert again.status_code == 409  # only the newest correction can be corrected

    listed = (
        await client.get(f"/peer/v1/assessments?participant_id={world.ids['participant']}&instrument=phq-9")
    ).json()
    assert {a["id"] for a in listed["items"]} == {record["id"], fix["id"]}
    gad = await client.post(
        "/peer/v1/assessments",
        json=body(
            world,
            dict.fromkeys(GAD7_ITEMS, 1),
            days_ago=40,
            instrument="gad-7",
            administered_by="participant",
            specialist_id=None,
            encounter_id=None,
        ),
    )
    assert gad.status_code == 201 and gad.json()["total"] == 7
    recent = f"/peer/v1/assessments?completed_from={at(10).isoformat().replace('+', '%2B')}"
    assert {a["instrument"] for a in (await client.get(recent)).json()["items"]} == {"phq-9"}
    assert (await client.get("/peer/v1/assessments?status=amended")).json()["items"][0]["id"] == fix["id"]


async def test_bad_answers_are_problems_naming_the_item(client):
    world = await World(client).build()
    missing = phq9([1] * 9)
    del missing["44252-5"]
    answer = await client.post("/peer/v1/assessments", json=body(world, missing))
    assert answer.status_code == 422 and answer.headers["content-type"].startswith("application/problem+json")
    assert "44252-5" in answer.json()["detail"] and answer.json()["errors"][0]["loc"] == ["answers", "44252-5"]
    out_of_range = await client.post("/peer/v1/assessments", json=body(world, phq9([1] * 8 + [4])))
    assert out_of_range.status_code == 422 and "44260-8" in out_of_range.json()["detail"]
    unknown = await client.post("/peer/v1/assessments", json=body(world, phq9([1] * 9), instrument="k10"))
    assert unknown.status_code == 422 and "k10" in unknown.json()["detail"]
    stranger = await client.post("/peer/v1/assessments", json=body(world, phq9([1] * 9), participant_id="nobody"))
    assert stranger.status_code == 422
    no_peer = await client.post("/peer/v1/assessments", json=body(world, phq9([1] * 9), specialist_id=None))
    assert no_peer.status_code == 422
    assert (await client.get("/peer/v1/assessments/nope")).status_code == 404
    assert (await client.get("/peer/v1/assessments?limit=0")).status_code == 422
    assert (await client.get("/peer/v1/participants/nope/outcomes")).status_code == 404
    correction = {"answers": listed(phq9([1] * 9)), "administered_by": "participant", "completed_at": at(1).isoformat()}
    assert (await client.post("/peer/v1/assessments/nope/amend", json=correction)).status_code == 404
    assert (await client.patch("/peer/v1/assessments/nope", json={})).status_code == 405


async def test_outcomes_series_with_change_from_baseline(client):
    world = await World(client).build()
    for days_ago, values in ((200, [2] * 9), (110, [2] * 5 + [1] * 4), (20, [1] * 8 + [0])):
        answer = await client.post("/peer/v1/assessments", json=body(world, phq9(values), days_ago=days_ago))
        assert answer.status_code == 201
    outcomes = await client.get(f"/peer/v1/participants/{world.ids['participant']}/outcomes")
    assert outcomes.status_code == 200
    (series,) = outcomes.json()["series"]
    assert (series["instrument"], series["direction"], series["reliable_change_points"]) == (
        "phq-9",
        "higher-is-worse",
        6,
    )
    assert [(p["total"], p["change_from_baseline"], p["change"]) for p in series["points"]] == [
        (18, 0, "baseline"),
        (14, -4, "no-reliable-change"),
        (8, -10, "reliable-improvement"),
    ]


async def test_due_and_overdue_follow_ups(client):
    world = await World(client).build()
    today = datetime.now(UTC).date()
    due = (await client.get("/peer/v1/assessments/due?instrument=phq-9")).json()["items"]
    assert [(d["participant_id"], d["occasion"], d["status"]) for d in due] == [
        (world.ids["participant"], "baseline", "due")
    ]
    later = (await client.get(f"/peer/v1/assessments/due?on={today + timedelta(days=45)}")).json()["items"]
    assert {(d["instrument"], d["status"]) for d in later} == {
        ("phq-9", "overdue"),
        ("gad-7", "overdue"),
        ("barc-10", "overdue"),
    }
    await client.post("/peer/v1/assessments", json=body(world, phq9([1] * 9), days_ago=0))
    after = (await client.get(f"/peer/v1/assessments/due?instrument=phq-9&on={today + timedelta(days=100)}")).json()
    assert [(d["occasion"], d["due_on"], d["status"]) for d in after["items"]] == [
        ("repeat", str(today + timedelta(days=90)), "due")
    ]
    assert (await client.get("/peer/v1/assessments/due?within_days=-1")).status_code == 422


async def test_instruments_are_listed(client):
    listed = (await client.get("/peer/v1/instruments")).json()["items"]
    assert [(i["id"], i["version"]) for i in listed] == [("barc-10", "1.0.0"), ("gad-7", "1.0.0"), ("phq-9", "1.0.0")]
