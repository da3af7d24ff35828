"""The matching routes through the API, over the real token and store: ranked matches with reasons,
the assign step (top match or an override, each with its reason in the referral and the audit log),
hard constraints refused, and the batch plan as a proposal that changes nothing."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import select

from service.store.tables import audit_log
from tests.conftest import token_headers
from tests.factories import TODAY, create, participant_body, referral_body, specialist_body

ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"


async def _program(client: Any) -> dict[str, str]:
    """Three specialists and a received referral for opioid use disorder, from a Spanish speaker."""
    ids = {}
    ids["ana"] = (
        await create(
            client,
            "specialists",
            specialist_body(
                name={"family": "Ana"},
                lived_experience=["substance-use"],
                languages=["es", "en"],
                weekly_capacity=10,
                gender="female",
                modalities=["video", "in-person"],
                county="Multnomah",
            ),
        )
    )["id"]
    ids["ben"] = (await create(client, "specialists", specialist_body(name={"family": "Ben"})))["id"]
    ids["wa"] = (
        await create(
            client,
            "specialists",
            specialist_body(
                name={"family": "Wash"},
                languages=["es"],
                certification={"state": "WA", "number": "W-1", "issued_on": "2025-01-01", "expires_on": "2099-01-01"},
            ),
        )
    )["id"]
    ids["participant"] = (
        await create(
            client,
            "participants",
            participant_body(
                language="es",
                address={"state": "OR"},
                match_preferences={
                    "consented_on": str(TODAY),
                    "specialist_gender": "female",
                    "modalities": ["video"],
                },
            ),
        )
    )["id"]
    body = referral_body(ids["participant"], reason={"text": "OUD", "code": "F11.20", "system": ICD10CM})
    ids["referral"] = (await create(client, "referrals", body))["id"]
    received = await client.post(f"/peer/v1/referrals/{ids['referral']}/receive", json={"by": "intake"})
    assert received.status_code == 200, received.text
    return ids


async def _audit(database: Any) -> list[dict[str, Any]]:
    async with database.read() as conn:
        rows = (await conn.execute(select(audit_log).order_by(audit_log.c.seq))).all()
    return [
        {**row._mapping, "detail": orjson.loads(row.detail) if isinstance(row.detail, str | bytes) else row.detail}
        for row in rows
    ]


async def test_matches_are_ranked_with_reasons_and_exclusions(client):
    ids = await _program(client)
    response = await client.get(f"/peer/v1/referrals/{ids['referral']}/matches")
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["wanted_areas"] == ["substance-use"]
    assert [m["specialist_id"] for m in answer["matches"]] == [ids["ana"], ids["ben"]]
    top = answer["matches"][0]
    assert top["rank"] == 1 and top["score"] > answer["matches"][1]["score"]
    assert "both have lived experience of recovery from substance use" in top["summary"]
    assert "speaks the participant's language (es)" in top["summary"]
    assert "10 of 10 slots free" in top["summary"]
    (excluded,) = answer["excluded"]
    assert excluded["specialist_id"] == ids["wa"]
    assert excluded["reasons"] == ["certified in WA, not in the participant's state (OR)"]
    assert answer["weights"]["lived_experience"] == 3.0


async def test_assigning_the_top_match_accepts_and_records_the_reason(client, database):
    ids = await _program(client)
    response = await client.post(
        f"/peer/v1/referrals/{ids['referral']}/assign",
        json={"specialist_id": ids["ana"], "reason": "shared recovery and language", "by": "coordinator"},
        headers={"If-Match": 'W/"2"'},
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["override"] is False and answer["match"]["rank"] == 1
    referral = answer["referral"]
    assert referral["status"] == "accepted" and referral["assigned_specialist_id"] == ids["ana"]
    assert response.headers["ETag"] == 'W/"3"'
    step = referral["transitions"][-1]
    assert step["by"] == "coordinator"
    assert step["reason"].startswith("shared recovery and language [match rank 1 of 2, score ")
    record = (await _audit(database))[-1]
    assert (record["subtype"], record["action"]) == ("peer-action", "U")
    assert record["detail"]["reason"] == "shared recovery and language"
    assignment = record["detail"]["assignment"]
    assert assignment["specialist_id"] == ids["ana"] and assignment["override"] is False
    assert assignment["rank"] == 1 and assignment["top_specialist_id"] == ids["ana"]
    assert assignment["factors"]["lived_experience"] == "1.0" and assignment["factors"]["continuity"] == "0.0"

    # her caseload now counts the assignment
    ranked = (await client.get(f"/peer/v1/referrals/{ids['referral']}/matches")).json()
    ana = next(m for m in ranked["matches"] if m["specialist_id"] == ids["ana"])
    assert "9 of 10 slots free" in ana["summary"]


async def test_an_override_is_allowed_and_recorded(client, database):
    ids = await _program(client)
    response = await client.post(
        f"/peer/v1/referrals/{ids['referral']}/assign",
        json={"specialist_id": ids["ben"], "reason": "participant asked for Ben by name", "by": "coordinator"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["override"] is True
    reason = response.json()["referral"]["transitions"][-1]["reason"]
    assert f"overrides the top match {ids['ana']}" in reason
    assignment = (await _audit(database))[-1]["detail"]["assignment"]
    assert assignment["override"] is True and assignment["top_specialist_id"] == ids["ana"]


async def test_a_hard_constraint_or_a_wrong_state_is_refused_and_changes_nothing(client, database):
    ids = await _program(client)
    before = (await client.get(f"/peer/v1/referrals/{ids['referral']}")).json()
    count = len(await _audit(database))
    refused = await client.post(
        f"/peer/v1/referrals/{ids['referral']}/assign",
        json={"specialist_id": ids["wa"], "reason": "x", "by": "coordinator"},
    )
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    assert "certified in WA" in refused.json()["detail"]
    unknown = await client.post(
        f"/peer/v1/referrals/{ids['referral']}/assign", json={"specialist_id": "nobody", "reason": "x", "by": "c"}
    )
    assert unknown.status_code == 422
    no_reason = await client.post(
        f"/peer/v1/referrals/{ids['referral']}/assign", json={"specialist_id": ids["ana"], "by": "c"}
    )
    assert no_reason.status_code == 422
    stale = await client.post(
        f"/peer/v1/referrals/{ids['referral']}/assign",
        json={"specialist_id": ids["ana"], "reason": "x", "by": "c"},
        headers={"If-Match": 'W/"1"'},
    )
    assert stale.status_code == 412
    assert (await client.get(f"/peer/v1/referrals/{ids['referral']}")).json() == before
    assert not any("assignment" in r["detail"] for r in (await _audit(database))[count:])

    fresh = (await create(client, "referrals", referral_body(ids["participant"])))["id"]
    not_received = await client.post(
        f"/peer/v1/referrals/{fresh}/assign", json={"specialist_id": ids["ana"], "reason": "x", "by": "c"}
    )
    assert not_received.status_code == 409
    missing = await client.get("/peer/v1/referrals/nope/matches")
    assert missing.status_code == 404


async def test_the_plan_is_a_proposal_for_the_open_queue(client):
    ids = await _program(client)
    second = (await create(client, "participants", participant_body(identifiers=[])))["id"]
    other = (await create(client, "referrals", referral_body(second)))["id"]
    before = (await client.get("/peer/v1/referrals")).json()
    response = await client.post("/peer/v1/matching/plan")
    assert response.status_code == 200, response.text
    plan = response.json()
    assert plan["proposal"] is True and plan["queue"] == 2
    batch = plan["batch"]
    assert batch["assigned"] == 2 and batch["unassigned"] == []
    assert {a["referral_id"] for a in batch["assignments"]} == {ids["referral"], other}
    assert next(a for a in batch["assignments"] if a["referral_id"] == ids["referral"])["specialist_id"] == ids["ana"]
    assert batch["total_score"] >= plan["greedy"]["total_score"]
    assert (await client.get("/peer/v1/referrals")).json() == before
    with_body = await client.post("/peer/v1/matching/plan", json={"x": 1})
    assert with_body.status_code in (400, 415, 422)


async def test_matching_needs_the_scopes_of_its_rule(anonymous, database, program):
    headers = await token_headers(anonymous, database, program, "reader", "system/ServiceRequest.rs")
    response = await anonymous.post("/peer/v1/matching/plan", headers=headers)
    assert response.status_code == 403  # the plan reads specialists too
    assign = await anonymous.post(
        "/peer/v1/referrals/x/assign", json={"specialist_id": "a", "reason": "r", "by": "b"}, headers=headers
    )
    assert assign.status_code == 403


async def test_preferences_are_optional_and_checked(client):
    ids = await _program(client)
    participant = (await client.get(f"/peer/v1/participants/{ids['participant']}")).json()
    assert participant["match_preferences"]["modalities"] == ["video"]
    bad = await client.patch(
        f"/peer/v1/participants/{ids['participant']}",
        json={"match_preferences": {"consented_on": str(TODAY), "specialist_age_min": 50, "specialist_age_max": 30}},
    )
    assert bad.status_code == 422
    no_consent = await client.patch(
        f"/peer/v1/participants/{ids['participant']}", json={"match_preferences": {"modalities": ["phone"]}}
    )
    assert no_consent.status_code == 422
    # withdrawing them: matching falls back to the referral and the record alone
    cleared = await client.patch(f"/peer/v1/participants/{ids['participant']}", json={"match_preferences": None})
    assert cleared.status_code == 200, cleared.text
    ranked = (await client.get(f"/peer/v1/referrals/{ids['referral']}/matches")).json()
    top = ranked["matches"][0]
    assert top["specialist_id"] == ids["ana"]
    assert "gender" not in top["summary"]
    window = {"day": "mon", "start": "12:00", "end": "09:00"}
    refused = await client.post("/peer/v1/specialists", json=specialist_body(availability=[window]))
    assert refused.status_code == 422
