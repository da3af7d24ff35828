"""The accounting of disclosures: what reached outside organisations about one participant, from the
API (JSON and CSV), the command line and the archive."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from mappings.ids import fhir_id
from service.audit import disclosures as accounting
from service.audit import write
from service.audit.archive import archive
from tests.audit.conftest import login, record, rows
from tests.factories import participant_body

NOW = datetime.now(UTC).replace(microsecond=0)
DAY = (NOW - timedelta(days=10)).replace(hour=10, minute=0, second=0)
"""The history's day at ten in the morning: hours added to it stay on that day whenever the tests run."""
CLINIC = "urn:oid:2.16.840.1.113883.19.5|riverside"
HOSPITAL = "1234567893"


@pytest.fixture
async def people(gateway, admin):
    ids = []
    for mrn in ("MRN-A", "MRN-B"):
        body = participant_body(identifiers=[{"type": "MR", "system": "https://h.example.org/mrn", "value": mrn}])
        response = await gateway.post("/peer/v1/participants", json=body, headers=admin)
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


@pytest.fixture
async def history(database, program, people):
    """Events about participant A (and B): some disclosures, some not."""
    a = fhir_id(program.identifier_system, "participant", people[0])
    b = fhir_id(program.identifier_system, "participant", people[1])
    pid = program.id
    day = DAY
    made = [
        # disclosures of A
        record(
            "read",
            recorded=day,
            program_id=pid,
            client_id="clinic-app",
            organization=CLINIC,
            patients=[a],
            entities=[f"Patient/{a}"],
            purpose="TREAT",
        ),
        record(
            "search",
            action="E",
            recorded=day + timedelta(hours=1),
            program_id=pid,
            client_id="clinic-app",
            organization=CLINIC,
            patients=[a, b],
            entities=[f"Patient/{b}", "Encounter/e1", "Encounter/e2"],
            query="Encounter?patient=x",
        ),
        record(
            "deliver",
            type_="exchange",
            recorded=day + timedelta(hours=2),
            program_id=pid,
            client_id=None,
            address=None,
            organization=HOSPITAL,
            patients=[a],
            entities=["Encounter/e1", "DocumentReference/d1"],
            endpoint="general-ehr",
        ),
        # not disclosures of A
        record("read", recorded=day + timedelta(hours=3), program_id=pid, client_id="peer-app", patients=[a]),
        record(
            "read",
            outcome="4",
            recorded=day + timedelta(hours=4),
            program_id=pid,
            client_id="clinic-app",
            organization=CLINIC,
            patients=[a],
            reason="outside the boundary",
        ),
        record(
            "read",
            recorded=day + timedelta(hours=5),
            program_id=pid,
            client_id="clinic-app",
            organization=CLINIC,
            patients=[b],
            entities=[f"Patient/{b}"],
        ),
        record(
            "token",
            type_="security",
            action="E",
            recorded=day + timedelta(hours=6),
            program_id=pid,
            client_id="clinic-app",
            organization=CLINIC,
            patients=[a],
        ),
        record(
            "read",
            recorded=day + timedelta(hours=7),
            program_id="another-program",
            client_id="clinic-app",
            organization=CLINIC,
            patients=[a],
        ),
        # a disclosure of A long ago
        record(
            "read",
            recorded=NOW - timedelta(days=900),
            program_id=pid,
            client_id="old-app",
            organization=CLINIC,
            patients=[a],
            entities=["Goal/g1"],
        ),
    ]
    for item in made:
        await write(database, item)
    return a, b


async def test_the_accounting_lists_each_disclosure_with_recipient_content_and_purpose(gateway, admin, people, history):
    a, _ = history
    response = await gateway.get(f"/peer/v1/participants/{people[0]}/disclosures", headers=admin)
    assert response.status_code == 200, response.text
    document = response.json()
    assert (document["participant_id"], document["patient_id"], document["program"]) == (people[0], a, "demo")
    assert document["count"] == 4
    entries = document["disclosures"]
    assert [e["recipient_client"] for e in entries] == ["old-app", "clinic-app", "clinic-app", None]
    old, read, search, delivery = entries
    assert old["disclosed"] == "read: 1 Goal"
    assert read["recipient_organization"] == CLINIC
    assert read["disclosed"] == "read: 1 Patient"
    assert read["resources"] == [f"Patient/{a}"]
    assert read["purpose"] == "TREAT"
    assert search["other_participants"] is True
    assert search["resources"] == []  # nobody else's record ids in A's accounting
    assert search["disclosed"].startswith("search: Encounter (the result also concerned other people")
    assert delivery["recipient_organization"] == HOSPITAL
    assert delivery["endpoint"] == "general-ehr"
    assert delivery["disclosed"] == "sent to the recipient's EHR: 1 DocumentReference, 1 Encounter"
    assert all(e["date"].endswith("Z") for e in entries)
    for entry in entries:  # each entry names the AuditEvent behind it
        found = await gateway.get(f"/fhir/AuditEvent?patient={a}&_count=100", headers=admin)
        assert entry["audit_event"] in {e["resource"]["id"] for e in found.json()["entry"]}


async def test_the_period_can_be_chosen(gateway, admin, people, history):
    since = DAY.date().isoformat()
    document = (
        await gateway.get(f"/peer/v1/participants/{people[0]}/disclosures?from={since}&to={since}", headers=admin)
    ).json()
    assert document["count"] == 3
    older = (await gateway.get(f"/peer/v1/participants/{people[0]}/disclosures?to=2020-01-01", headers=admin)).json()
    assert older["count"] == 0
    bad = await gateway.get(f"/peer/v1/participants/{people[0]}/disclosures?from=tomorrow", headers=admin)
    assert bad.status_code == 400
    reversed_ = await gateway.get(
        f"/peer/v1/participants/{people[0]}/disclosures?from=2026-02-01&to=2026-01-01", headers=admin
    )
    assert reversed_.status_code == 400


async def test_csv_for_the_person_who_asked(gateway, admin, people, history):
    response = await gateway.get(f"/peer/v1/participants/{people[0]}/disclosures?format=csv", headers=admin)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    table = list(csv.DictReader(io.StringIO(response.text)))
    assert list(table[0]) == list(accounting.CSV_COLUMNS)
    assert [row["recipient_client"] for row in table] == ["old-app", "clinic-app", "clinic-app", "general-ehr"]
    assert table[1]["purpose"] == "TREAT"


async def test_producing_the_accounting_is_audited(gateway, admin, database, people, history):
    a, _ = history
    await gateway.get(f"/peer/v1/participants/{people[0]}/disclosures", headers=admin)
    last = (await rows(database))[-1]
    assert (last["type"], last["subtype"], last["client_id"]) == ("admin", "disclosure-report", "privacy-officer")
    assert last["detail"]["patients"] == [a]
    assert last["detail"]["returned"] == 4


async def test_unknown_participants_and_other_callers_are_refused(gateway, admin, database, program, people):
    assert (await gateway.get("/peer/v1/participants/nobody/disclosures", headers=admin)).status_code == 404
    assert (await gateway.get(f"/peer/v1/participants/{people[0]}/disclosures")).status_code == 401
    reader = await login(gateway, database, program, "reader", "system/*.rs")
    assert (await gateway.get(f"/peer/v1/participants/{people[0]}/disclosures", headers=reader)).status_code == 403
    outsider = await login(gateway, database, program, "outside-reader", "system/*.rs", organization=CLINIC)
    response = await gateway.get(f"/peer/v1/participants/{people[0]}/disclosures", headers=outsider)
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_archived_disclosures_are_included(database, program, people, history, tmp_path):
    await archive(database, tmp_path, NOW + timedelta(days=1))  # all but the newest record (the old read)
    assert len(await rows(database)) == 1
    start, end = accounting.period(None, None)
    without = await accounting.accounting(database, program, people[0], start, end)
    assert [d["recipient_client"] for d in without["disclosures"]] == ["old-app"]
    included = await accounting.accounting(database, program, people[0], start, end, archive_dir=tmp_path)
    assert [d["recipient_client"] for d in included["disclosures"]] == ["old-app", "clinic-app", "clinic-app", None]
    assert included["disclosures"][0]["disclosed"] == "read: 1 Goal"


async def test_the_command_line_prints_the_same_report(database, program, people, history, monkeypatch):
    from typer.testing import CliRunner

    from service.cli.audit import audit_app
    from service.settings import get_settings

    monkeypatch.setenv("PEERLINK_DATABASE_URL", database.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        done = await asyncio.to_thread(runner.invoke, audit_app, ["disclosures", people[0]])
        assert done.exit_code == 0, done.output
        assert done.stdout.startswith("{"), done.stdout[:600]
        document = orjson.loads(done.stdout)
        assert document["count"] == 4
        since = DAY.date().isoformat()
        done = await asyncio.to_thread(
            runner.invoke, audit_app, ["disclosures", people[0], "--from", since, "--format", "csv"]
        )
        assert done.exit_code == 0, done.output
        assert len(list(csv.DictReader(io.StringIO(done.stdout)))) == 3
        missing = await asyncio.to_thread(runner.invoke, audit_app, ["disclosures", "nobody"])
        assert missing.exit_code == 2
        assert "no participant" in missing.output
    finally:
        get_settings.cache_clear()
    last = (await rows(database))[-1]
    assert (last["subtype"], last["client_id"][:4]) == ("disclosure-report", "cli:")
