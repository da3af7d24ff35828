"""The demo program bills: its 837P for NC Medicaid validates with pyx12 (zero errors), a 999 and an
835 built for that file are ingested and every line matches its session, and the file shows in each
participant's accounting of disclosures."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from mappings.x12.validate import validate
from service.audit.disclosures import accounting, parse_moment
from service.cli.seed import seed_demo
from service.domain.billing import load_payers
from service.domain.errors import BadRequest
from service.records import billing, claims, claims_answers
from service.records.programs import get_by_code
from tests.billing.payer_side import ack_999, remit_835

TODAY = date(2026, 12, 6)
FIRST, LAST = TODAY - timedelta(days=60), TODAY


async def _demo(database):
    async with database.transaction() as conn:
        await seed_demo(conn, TODAY)
        return await get_by_code(conn, "demo")


async def test_demo_837p_validates_and_its_999_and_835_match_every_line(database):
    program = await _demo(database)
    payers = load_payers()
    async with database.read() as conn:
        lines = await billing.readiness(conn, program, payers, FIRST, LAST, "nc-medicaid")
    ready = {line.session_id for line in lines if line.status == "ready"}
    assert len(ready) >= 3, [(line.session_id, [r.code for r in line.reasons]) for line in lines]
    async with database.transaction() as conn:
        export = await claims.export(conn, program, payers, "nc-medicaid", FIRST, LAST)
    assert set(export.sessions) == ready
    assert validate(export.text) == []
    assert export.text.count("CLM*") == len(ready)
    assert "PRV*BI*PXC*251S00000X~" in export.text and "PRV*PE*PXC*175T00000X~" in export.text
    assert "NM1*85*2*HARBOR PEER SUPPORT COLLECTIVE (DEMO)*****XX*1881000008~" in export.text
    assert "REF*EI*990000001~" in export.text
    assert export.text.count("N4*RALEIGH*NC*27601~") == len(ready)  # each subscriber's address (2010BA)

    # the 999 and the 835 are valid X12 too
    accepted = ack_999(export.text)
    remittance, expected = remit_835(export.text)
    assert validate(accepted) == []
    assert validate(remittance) == []
    async with database.transaction() as conn:
        acked = await claims_answers.ingest(conn, program.id, accepted)
    assert acked.kind == "999" and acked.unmatched == []
    assert {m["session_id"] for m in acked.matched} == ready
    assert {m["status"] for m in acked.matched} == {"accepted"}
    async with database.transaction() as conn:
        paid = await claims_answers.ingest(conn, program.id, remittance)
    assert paid.unmatched == []
    by_claim = {c.claim_number: c for c in export.claims}
    assert {m["line_control"]: m["session_id"] for m in paid.matched} == {
        c.line_control: s for c, s in zip(export.claims, export.sessions, strict=True)
    }
    async with database.read() as conn:
        stood = await claims_answers.claims(conn, program.id, FIRST, LAST)
    assert len(stood) == len(ready)
    for item in stood:
        want_paid, want_codes = expected[item["claim_number"]]
        assert item["paid"] == want_paid
        assert item["adjustment_codes"] == want_codes
        assert item["outstanding"] == 0
        assert item["charge"] == by_claim[item["claim_number"]].charge
        assert item["status"] == ("denied" if want_paid == 0 else "partial")

    # nothing is billed twice: a second export over the same days has nothing to bill
    with pytest.raises(BadRequest, match="already-billed"):
        async with database.transaction() as conn:
            await claims.export(conn, program, payers, "nc-medicaid", FIRST, LAST)


async def test_a_rejected_file_is_recorded_with_its_segment_in_error_and_billed_again(database):
    program = await _demo(database)
    payers = load_payers()
    async with database.transaction() as conn:
        first = await claims.export(conn, program, payers, "nc-medicaid", FIRST, LAST)
    async with database.transaction() as conn:
        result = await claims_answers.ingest(conn, program.id, ack_999(first.text, reject=True))
    assert {m["status"] for m in result.matched} == {"rejected"}
    assert result.errors[0]["segment"] == "SV1" and result.errors[0]["element"] == "4"
    async with database.transaction() as conn:
        again = await claims.export(conn, program, payers, "nc-medicaid", FIRST, LAST)
    assert sorted(again.sessions) == sorted(first.sessions)
    assert {c.frequency for c in again.claims} == {"1"}  # the payer never took the first file
    assert again.interchange == first.interchange + 1
    assert validate(again.text) == []


async def test_a_claim_file_is_in_each_participants_accounting_of_disclosures(database):
    program = await _demo(database)
    payers = load_payers()
    async with database.transaction() as conn:
        export = await claims.export(conn, program, payers, "nc-medicaid", FIRST, LAST)
        from service.api.peer.claims import disclosure
        from service.audit import write

        await write(conn, disclosure(program, export, payers, "peerlink-cli", None))
    start, end = parse_moment("2000-01-01"), parse_moment("2100-01-01")
    assert start is not None
    assert end is not None
    for participant in export.participants:
        report = await accounting(database, program, participant, start, end)
        entries = [d for d in report["disclosures"] if d["interaction"] == "sent to the payer in an 837P claim file"]
        assert len(entries) == 1
        assert entries[0]["recipient_organization"] == "NC MEDICAID"
        assert entries[0]["purpose"] == "HPAYMT"
