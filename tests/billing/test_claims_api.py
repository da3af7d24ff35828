"""The claims routes and commands on every backend: the billing provider, the 837P export (a file
that validates, nothing billed twice, a corrected claim as a replacement), bad input that writes
nothing, the payer's answers and the claims as they stand."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from mappings.x12.validate import validate
from service.store.tables import claim_files, claim_lines
from tests.billing.payer_side import ack_999, remit_835
from tests.factories import create, note_body, participant_body, referral_body, specialist_body

DAY = datetime(2026, 3, 2, 10, tzinfo=UTC)
MARCH = {"payer": "nc-medicaid", "from": "2026-03-01", "to": "2026-03-31"}
PROVIDER = {
    "taxonomy": "251S00000X",
    "tax_id": "990000001",
    "address": {"line": ["1 Main St"], "city": "Raleigh", "state": "NC", "postal_code": "27601-0001"},
}


async def _session(client, participant, specialist, start, minutes):
    body = {
        "participant_id": participant,
        "specialist_id": specialist,
        "start": start.isoformat(),
        "end": (start + timedelta(minutes=minutes)).isoformat(),
        "modality": "in-person",
        "support_categories": ["emotional"],
        "status": "finished",
    }
    session = await create(client, "encounters", body)
    note = await create(client, "notes", note_body(session["id"], specialist))
    assert (await client.post(f"/peer/v1/notes/{note['id']}/sign")).status_code == 200
    return session["id"]


HOME = {"line": ["5 Elm St"], "city": "Raleigh", "state": "NC", "postal_code": "27601"}


async def _person(client, specialist, *, coverage=True, address=True):
    body = participant_body(**({"address": HOME} if address else {}))
    participant = (await create(client, "participants", body))["id"]
    reason = {"text": "Depression", "code": "F33.1", "system": "http://hl7.org/fhir/sid/icd-10-cm"}
    referral = await create(
        client, "referrals", referral_body(participant, reason=reason, requested_at="2026-02-01T00:00:00Z")
    )
    for action, extra in (("receive", {}), ("accept", {"specialist_id": specialist})):
        answer = await client.post(f"/peer/v1/referrals/{referral['id']}/{action}", json={"by": "intake", **extra})
        assert answer.status_code == 200, answer.text
    found = None
    if coverage:
        body = {
            "participant_id": participant,
            "payer": "nc-medicaid",
            "member_id": "NC1",
            "period": {"start": "2026-01-01"},
        }
        found = await create(client, "coverages", body)
    return participant, found


async def _specialist(client, npi):
    certification = {"state": "NC", "number": "NC-1", "issued_on": "2025-01-01", "expires_on": "2027-01-01"}
    body = specialist_body(certification=certification, **({"npi": npi} if npi else {}))
    return (await create(client, "specialists", body))["id"]


@pytest.fixture
async def office(client):
    """An NC program ready to bill: two covered participants, a participant without coverage, and a
    specialist without an NPI."""
    answer = await client.patch("/peer/v1/billing/provider", json=PROVIDER)
    assert answer.status_code == 200, answer.text
    peer = await _specialist(client, "1881000016")
    unnumbered = await _specialist(client, None)
    first, coverage = await _person(client, peer)
    second, _ = await _person(client, peer)
    uncovered, _ = await _person(client, peer, coverage=False)
    homeless, _ = await _person(client, peer, address=False)
    sessions = {
        "first": await _session(client, first, peer, DAY, 60),
        "second": await _session(client, second, peer, DAY + timedelta(days=1), 30),
        "uncovered": await _session(client, uncovered, peer, DAY + timedelta(days=2), 30),
        "no-npi": await _session(client, first, unnumbered, DAY + timedelta(days=3), 30),
        "no-address": await _session(client, homeless, peer, DAY + timedelta(days=4), 30),
    }
    return {"sessions": sessions, "coverage": coverage}


async def _count(database, table):
    async with database.read() as conn:
        return (await conn.execute(select(func.count()).select_from(table))).scalar_one()


async def test_billing_provider_is_read_and_set_with_checks(client):
    assert (await client.get("/peer/v1/billing/provider")).json()["tax_id"] is None
    bad = await client.patch("/peer/v1/billing/provider", json={"taxonomy": "nonsense"})
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")
    set_ = await client.patch("/peer/v1/billing/provider", json=PROVIDER)
    assert set_.status_code == 200
    assert set_.json() | {"npi": None} == {**PROVIDER, "npi": None}
    assert (await client.get("/peer/v1/billing/provider")).json()["npi"] == "1234567893"


async def test_export_bills_ready_sessions_once_and_replaces_a_corrected_claim(client, office, database):
    answer = await client.post("/peer/v1/billing/claims/export", json=MARCH)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/edi-x12")
    assert answer.headers["x-peerlink-claims"] == "2"
    text = answer.text
    assert validate(text) == []
    assert text.count("CLM*") == 2 and "*11:B:1*" in text
    assert "SV1*HC:H0038*47.88*UN*4***1~" in text  # 60 minutes: 4 units at $11.97
    again = await client.post("/peer/v1/billing/claims/export", json=MARCH)
    assert again.status_code == 400
    assert again.headers["content-type"].startswith("application/problem+json")
    detail = again.json()["detail"]
    # the uncovered session is no payer's; the others say why they were not billed
    assert detail.endswith("2 already-billed, 1 rendering-npi-missing, 1 subscriber-address-missing")
    # the member id was wrong: the first participant's claim goes again, as a replacement
    coverage = office["coverage"]
    changed = await client.patch(f"/peer/v1/coverages/{coverage['id']}", json={"member_id": "NC2"})
    assert changed.status_code == 200
    replaced = await client.post("/peer/v1/billing/claims/export", json=MARCH)
    assert replaced.status_code == 200, replaced.text
    assert validate(replaced.text) == []
    assert replaced.text.count("CLM*") == 1
    assert "*11:B:7*" in replaced.text and "REF*F8*C000000001~" in replaced.text
    assert "MI*NC2~" in replaced.text
    assert int(replaced.headers["x-peerlink-interchange"]) == int(answer.headers["x-peerlink-interchange"]) + 1
    listed = (await client.get("/peer/v1/billing/claims", params={"from": "2026-03-01", "to": "2026-03-31"})).json()
    assert [(c["claim_number"], c["replaced_by"]) for c in listed["items"]] == [
        ("C000000001", "C000000003"),
        ("C000000003", None),
        ("C000000002", None),
    ]
    assert {s["session_id"] for s in listed["sessions"]} == {office["sessions"]["first"], office["sessions"]["second"]}
    assert sum(float(s["outstanding"]) for s in listed["sessions"]) == pytest.approx(47.88 + 23.94)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({**MARCH, "payer": "acme"}, "no payer rule set named 'acme'"),
        ({**MARCH, "payer": "tx-medicaid"}, "no [claims] table"),
        ({**MARCH, "from": "2026-04-01", "to": "2026-04-30"}, "nothing to bill"),
        ({**MARCH, "from": "2026-03-31", "to": "2026-03-01"}, "to is before from"),
    ],
)
async def test_bad_exports_say_why_and_write_nothing(client, office, database, body, words):
    answer = await client.post("/peer/v1/billing/claims/export", json=body)
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert words in answer.json()["detail"]
    assert await _count(database, claim_files) == 0
    assert await _count(database, claim_lines) == 0


async def test_a_program_without_a_tax_id_cannot_export(client, database):
    answer = await client.post("/peer/v1/billing/claims/export", json=MARCH)
    assert answer.status_code == 400
    assert "lacks tax_id, address" in answer.json()["detail"]
    assert await _count(database, claim_files) == 0


async def test_the_payers_answers_are_matched_to_the_sessions(client, office):
    text = (await client.post("/peer/v1/billing/claims/export", json=MARCH)).text
    acked = await client.post(
        "/peer/v1/billing/remittances", content=ack_999(text), headers={"content-type": "application/edi-x12"}
    )
    assert acked.status_code == 200, acked.text
    assert {m["status"] for m in acked.json()["matched"]} == {"accepted"}
    remittance, expected = remit_835(text, deny_every=2)
    paid = await client.post("/peer/v1/billing/remittances", content=remittance, headers={"content-type": "text/plain"})
    assert paid.status_code == 200, paid.text
    matched = {m["session_id"]: m["status"] for m in paid.json()["matched"]}
    assert matched == {office["sessions"]["first"]: "partial", office["sessions"]["second"]: "denied"}
    listed = (await client.get("/peer/v1/billing/claims", params={"from": "2026-03-01", "to": "2026-03-31"})).json()
    by_number = {c["claim_number"]: c for c in listed["items"]}
    for number, (amount, codes) in expected.items():
        assert float(by_number[number]["paid"]) == pytest.approx(float(amount))
        assert by_number[number]["adjustment_codes"] == codes
        assert float(by_number[number]["outstanding"]) == 0
    assert by_number["C000000002"]["adjustment_codes"] == ["CO-50", "N115"]


@pytest.mark.parametrize(
    "body",
    [b"not x12 at all", b"ISA*00*", b"\xff\xfe", ack_999.__doc__.encode() if ack_999.__doc__ else b"x"],
)
async def test_unreadable_answers_are_400(client, body):
    answer = await client.post("/peer/v1/billing/remittances", content=body, headers={"content-type": "text/plain"})
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")


async def test_an_answer_sent_as_json_is_415(client):
    answer = await client.post("/peer/v1/billing/remittances", json={"x": 1})
    assert answer.status_code == 415
    assert answer.headers["content-type"].startswith("application/problem+json")


async def test_the_command_line_exports_ingests_and_shows_status(database, office, monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from service.cli import app
    from service.settings import get_settings

    monkeypatch.setenv("PEERLINK_DATABASE_URL", database.url.render_as_string(hide_password=False))
    monkeypatch.setenv("PEERLINK_LOG_JSON", "false")
    get_settings.cache_clear()
    runner = CliRunner()
    out = tmp_path / "march.x12"
    argv = [
        "claims",
        "export",
        "--payer",
        "nc-medicaid",
        "--from",
        "2026-03-01",
        "--to",
        "2026-03-31",
        "--out",
        str(out),
    ]
    try:
        done = await asyncio.to_thread(runner.invoke, app, argv)
        assert done.exit_code == 0, done.output
        assert "2 claims (0 replacements), charge 71.82" in done.stdout
        assert "rendering-npi-missing: the peer specialist has no NPI" in done.stdout
        assert validate(out.read_text()) == []
        twice = await asyncio.to_thread(runner.invoke, app, [*argv[:-1], str(tmp_path / "again.x12")])
        assert twice.exit_code == 2 and "nothing to bill" in twice.output
        assert not (tmp_path / "again.x12").exists() and not (tmp_path / "again.x12.part").exists()
        nowhere = await asyncio.to_thread(runner.invoke, app, [*argv[:-1], str(tmp_path / "no" / "such.x12")])
        assert nowhere.exit_code == 2 and "does not exist" in nowhere.output
        remittance, _ = remit_835(out.read_text())
        (tmp_path / "remit.835").write_text(remittance)
        ingested = await asyncio.to_thread(runner.invoke, app, ["claims", "ingest", str(tmp_path / "remit.835")])
        assert ingested.exit_code == 0, ingested.output
        assert "835: 2 lines matched, 0 unmatched" in ingested.stdout
        status = await asyncio.to_thread(
            runner.invoke, app, ["claims", "status", "--from", "2026-03-01", "--to", "2026-03-31"]
        )
        assert status.exit_code == 0, status.output
        assert "(CO-45)" in status.stdout and "2 sessions billed" in status.stdout
        shown = await asyncio.to_thread(runner.invoke, app, ["claims", "provider", "--tax-id", "12"])
        assert shown.exit_code == 2 and "tax_id" in shown.output
    finally:
        get_settings.cache_clear()


@pytest.mark.parametrize(("first", "last"), [("0001-01-01", "0001-02-01"), ("9999-12-01", "9999-12-31")])
async def test_dates_at_the_ends_of_the_calendar_are_400(client, office, first, last):
    for answer in (
        await client.get("/peer/v1/billing/readiness", params={"from": first, "to": last}),
        await client.post("/peer/v1/billing/claims/export", json={**MARCH, "from": first, "to": last}),
    ):
        assert answer.status_code == 400, answer.text
        assert "between the years" in answer.json()["detail"]
