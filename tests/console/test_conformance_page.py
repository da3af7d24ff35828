"""The conformance check run from a connection's page, against the sandbox EHR in process: the
check's table on the page, the run audited; an auditor cannot run it."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from sqlalchemy import select

from service.app import create_app
from service.console.roles import Role
from service.exchange import connections
from service.exchange.conformance import NEEDS, TOKEN
from service.store.tables import audit_log
from tests.console.conftest import CONSOLE_URL, csrf_of, signed_in_as
from tests.sandbox.support import ROOT, build, pem


async def test_the_check_runs_from_the_connection_page(settings, database, program, tmp_path):
    ehr = build(tmp_path / "sandbox-keys")
    key = ehr.register("peerlink")
    key_file = tmp_path / "peerlink.pem"
    key_file.write_bytes(pem(key))
    values = {
        "name": "sandbox",
        "base_url": ROOT + ehr.fhir,
        "client_id": "peerlink",
        "organization": "urn:oid:2.16.840.1.113883.3.1|sandbox",
        "key_file": str(key_file),
        "kid": key.kid,
        "push": ["encounters", "notes"],
    }
    async with database.transaction() as conn:
        await connections.add(conn, program.id, values, datetime.now(UTC))
    app = create_app(settings, database, outbound=ehr.transport)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url=CONSOLE_URL) as console:
            await signed_in_as(console, database, program, Role.INTEGRATOR)
            page = await console.get("/console/integration/connections/sandbox")
            assert "Run the conformance check now" in page.text
            ran = await console.post(
                "/console/integration/connections/sandbox/check", data={"csrf_token": csrf_of(page.text)}
            )
            assert ran.status_code == 200, ran.text
            assert "every check that ran passed" in ran.text
            for row in (TOKEN, *(n.name for n in NEEDS)):
                assert f'<tr><td>{row}</td><td class="">PASS</td>' in ran.text.replace("&#39;", "'"), row
            async with database.read() as conn:
                [event] = list(await conn.execute(select(audit_log).where(audit_log.c.subtype == "conformance-check")))
            assert event.detail["ok"] is True and event.detail["connection"] == "sandbox"

            await console.post("/console/sign-out", data={"csrf_token": csrf_of(ran.text)})
            await signed_in_as(console, database, program, Role.AUDITOR)
            page = await console.get("/console/integration/connections/sandbox")
            assert "Run the conformance check now" not in page.text
            refused = await console.post(
                "/console/integration/connections/sandbox/check", data={"csrf_token": csrf_of(page.text)}
            )
            assert refused.status_code == 403
    finally:
        await ehr.http.aclose()


async def test_an_unreadable_key_is_a_clear_refusal(console, database, program, tmp_path):
    values = {
        "name": "keyless",
        "base_url": "https://ehr.example.org/fhir",
        "client_id": "peerlink",
        "organization": "urn:oid:2.16.840.1.113883.3.1|x",
        "key_file": str(tmp_path / "missing.pem"),
        "push": ["encounters"],
    }
    async with database.transaction() as conn:
        await connections.add(conn, program.id, values, datetime.now(UTC))
    await signed_in_as(console, database, program, Role.PROGRAM_ADMIN)
    page = await console.get("/console/integration/connections/keyless")
    answer = await console.post(
        "/console/integration/connections/keyless/check", data={"csrf_token": csrf_of(page.text)}
    )
    assert answer.status_code == 409 and "the key file cannot be read" in answer.text
    unknown = await console.get("/console/integration/connections/nope")
    assert unknown.status_code == 404
