"""Coverages and claim readiness through the peer API and `peerlink claims check`, on every backend."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from tests.factories import create, note_body, participant_body, referral_body, specialist_body

DAY = datetime(2026, 3, 2, 10, tzinfo=UTC)


async def _session(client, participant, specialist, start, minutes, *, sign=True, **kw):
    body = {
        "participant_id": participant,
        "specialist_id": specialist,
        "start": start.isoformat(),
        "end": (start + timedelta(minutes=minutes)).isoformat(),
        "modality": "in-person",
        "support_categories": ["emotional"],
        "status": "finished",
        **kw,
    }
    session = await create(client, "encounters", body)
    note = await create(client, "notes", note_body(session["id"], specialist))
    if sign:
        assert (await client.post(f"/peer/v1/notes/{note['id']}/sign")).status_code == 200
    return session["id"]


@pytest.fixture
async def books(client):
    """An NC participant with coverage and an accepted referral; four sessions in March 2026."""
    certification = {"state": "NC", "number": "NC-1", "issued_on": "2025-01-01", "expires_on": "2027-01-01"}
    specialist = (await create(client, "specialists", specialist_body(certification=certification, npi="1234567893")))[
        "id"
    ]
    participant = (await create(client, "participants", participant_body()))["id"]
    reason = {"text": "Depression", "code": "F33.1", "system": "http://hl7.org/fhir/sid/icd-10-cm"}
    referral = await create(
        client, "referrals", referral_body(participant, reason=reason, requested_at="2026-02-01T00:00:00Z")
    )
    for action, extra in (("receive", {}), ("accept", {"specialist_id": specialist})):
        answer = await client.post(f"/peer/v1/referrals/{referral['id']}/{action}", json={"by": "intake", **extra})
        assert answer.status_code == 200, answer.text
    coverage = await create(
        client,
        "coverages",
        {
            "participant_id": participant,
            "payer": "nc-medicaid",
            "plan": "Standard plan",
            "member_id": "NC123456",
            "period": {"start": "2026-01-01"},
        },
    )
    ready = await _session(client, participant, specialist, DAY, 60)
    unsigned = await _session(client, participant, specialist, DAY + timedelta(days=1), 30, sign=False)
    crowded = await _session(
        client, participant, specialist, DAY + timedelta(days=2), 45, modality="group", group_size=14
    )
    video = await _session(client, participant, specialist, DAY + timedelta(days=3), 23, modality="video")
    return {
        "participant": participant,
        "specialist": specialist,
        "coverage": coverage,
        "sessions": {"ready": ready, "unsigned": unsigned, "crowded": crowded, "video": video},
    }


async def test_coverage_crud_checks_payer_and_participant(client, books):
    coverage = books["coverage"]
    read = await client.get(f"/peer/v1/coverages/{coverage['id']}")
    assert read.status_code == 200
    assert read.headers["etag"] == 'W/"1"'
    changed = await client.patch(
        f"/peer/v1/coverages/{coverage['id']}",
        json={"authorizations": [{"number": "PA-1", "period": {"start": "2026-03-01"}, "units": 40}]},
        headers={"If-Match": 'W/"1"'},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["authorizations"][0]["number"] == "PA-1"
    stale = await client.patch(
        f"/peer/v1/coverages/{coverage['id']}", json={"plan": "x"}, headers={"If-Match": 'W/"1"'}
    )
    assert stale.status_code == 412
    listed = await client.get("/peer/v1/coverages", params={"participant_id": books["participant"]})
    assert [c["id"] for c in listed.json()["items"]] == [coverage["id"]]
    assert (await client.get("/peer/v1/coverages", params={"payer": "tx-medicaid"})).json()["items"] == []
    body = {
        "participant_id": books["participant"],
        "payer": "acme",
        "member_id": "A1",
        "period": {"start": "2026-01-01"},
    }
    unknown = await client.post("/peer/v1/coverages", json=body)
    assert unknown.status_code == 422
    assert unknown.headers["content-type"].startswith("application/problem+json")
    assert "nc-medicaid" in unknown.json()["detail"]
    nobody = await client.post("/peer/v1/coverages", json={**body, "payer": "default", "participant_id": "nobody"})
    assert nobody.status_code == 422
    moved = await client.patch(f"/peer/v1/coverages/{coverage['id']}", json={"participant_id": "other"})
    assert moved.status_code == 422
    assert (await client.get("/peer/v1/coverages/missing")).status_code == 404


async def test_readiness_lists_every_line_with_its_reasons(client, books):
    answer = await client.get("/peer/v1/billing/readiness", params={"from": "2026-03-01", "to": "2026-03-31"})
    assert answer.status_code == 200, answer.text
    report = answer.json()
    lines = {line["session_id"]: line for line in report["items"]}
    sessions = books["sessions"]
    ready = lines[sessions["ready"]]
    assert ready["status"] == "ready", ready["reasons"]
    assert (ready["units"], ready["charge"], ready["place_of_service"]) == (4, "47.88", "11")
    assert ready["diagnosis_codes"] == ["F33.1"]
    assert ready["member_id"] == "NC123456"
    assert [r["code"] for r in lines[sessions["unsigned"]]["reasons"]] == ["note-unsigned"]
    crowded = lines[sessions["crowded"]]
    assert crowded["modifiers"] == ["HQ"]
    assert [r["code"] for r in crowded["reasons"]] == ["group-over-limit"]
    video = lines[sessions["video"]]
    assert (video["modifiers"], video["units"], video["status"]) == (["GT"], 2, "ready")
    assert report["summary"] == {
        "sessions": 4,
        "ready": 2,
        "blocked": 2,
        "units_ready": 6,
        "charge_ready": "71.82",
        "reasons": {"group-over-limit": 1, "note-unsigned": 1},
    }
    only_tx = await client.get(
        "/peer/v1/billing/readiness", params={"from": "2026-03-01", "to": "2026-03-31", "payer": "tx-medicaid"}
    )
    assert only_tx.json()["items"] == []
    march_2 = await client.get("/peer/v1/billing/readiness", params={"from": "2026-03-02", "to": "2026-03-02"})
    assert [line["session_id"] for line in march_2.json()["items"]] == [sessions["ready"]]


async def test_a_session_without_coverage_is_blocked_with_no_coverage(client, books):
    await client.patch(
        f"/peer/v1/coverages/{books['coverage']['id']}", json={"period": {"start": "2026-01-01", "end": "2026-03-02"}}
    )
    report = (await client.get("/peer/v1/billing/readiness", params={"from": "2026-03-01", "to": "2026-03-31"})).json()
    late = next(line for line in report["items"] if line["session_id"] == books["sessions"]["video"])
    assert "no-coverage" in [r["code"] for r in late["reasons"]]
    assert late["payer"] is None


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"from": "2026-03-01", "to": "2026-03-31", "payer": "acme"}, 400),
        ({"from": "2026-03-31", "to": "2026-03-01"}, 400),
        ({"from": "2026-13-01", "to": "2026-03-31"}, 422),
        ({"from": "2025-01-01", "to": "2026-12-31"}, 400),
        ({"to": "2026-03-31"}, 422),
    ],
)
async def test_bad_readiness_questions_get_problem_json(client, params, status):
    answer = await client.get("/peer/v1/billing/readiness", params=params)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")


async def test_payer_rule_sets_are_listed(client):
    answer = await client.get("/peer/v1/billing/payers")
    assert answer.status_code == 200
    ids = [p["id"] for p in answer.json()["items"]]
    assert ids == ["default", "nc-medicaid", "nj-medicaid-sud", "tx-medicaid"]


async def test_the_command_line_lists_the_same_reasons(database, books, monkeypatch):
    from typer.testing import CliRunner

    from service.cli import app
    from service.settings import get_settings

    monkeypatch.setenv("PEERLINK_DATABASE_URL", database.url.render_as_string(hide_password=False))
    monkeypatch.setenv("PEERLINK_LOG_JSON", "false")
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        done = await asyncio.to_thread(
            runner.invoke, app, ["claims", "check", "--from", "2026-03-01", "--to", "2026-03-31"]
        )
        assert done.exit_code == 1, done.output  # some sessions are blocked
        assert "note-unsigned: the session's note is a draft: sign it" in done.stdout
        assert "group-over-limit: 14 attended" in done.stdout
        assert "4 sessions: 2 ready, 2 blocked" in done.stdout
        as_json = await asyncio.to_thread(
            runner.invoke, app, ["claims", "check", "--from", "2026-03-02", "--to", "2026-03-02", "--json"]
        )
        assert as_json.exit_code == 0, as_json.output
        assert [line["charge"] for line in orjson.loads(as_json.stdout)] == ["47.88"]
        unknown = await asyncio.to_thread(
            runner.invoke, app, ["claims", "check", "--from", "2026-03-01", "--to", "2026-03-31", "--payer", "acme"]
        )
        assert unknown.exit_code == 2
        assert "no payer rule set named 'acme'" in unknown.output
        bad = await asyncio.to_thread(runner.invoke, app, ["claims", "check", "--from", "March", "--to", "2026-03-31"])
        assert bad.exit_code == 2
        assert "--from must be a date" in bad.output
    finally:
        get_settings.cache_clear()


async def test_the_date_of_service_is_the_sessions_own_day(client, books):
    """An evening session in US Central time is billed on its own day, not on the UTC date."""
    evening = datetime.fromisoformat("2026-03-20T19:30:00-05:00")  # 00:30 UTC on the 21st
    session = await _session(client, books["participant"], books["specialist"], evening, 60)
    answer = await client.get("/peer/v1/billing/readiness", params={"from": "2026-03-20", "to": "2026-03-20"})
    lines = answer.json()["items"]
    assert [(line["session_id"], line["date_of_service"]) for line in lines] == [(session, "2026-03-20")]
    assert (await client.get("/peer/v1/billing/readiness", params={"from": "2026-03-21", "to": "2026-03-21"})).json()[
        "items"
    ] == []
