"""The writer: records committed on their own or with the caller's change, one chain, every kind of
event stored and served as a valid BALP-shaped AuditEvent."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert

from mappings.models import validate
from service.audit import AuditUnavailable, write, write_many
from service.audit.chain import GENESIS, record_hash
from service.audit.fhir import audit_event
from service.audit.verify import verify
from service.store import Database
from service.store.tables import review_flags
from tests.audit.conftest import break_audit_writes, index_rows, record, rows

BASE = "http://peerlink.test/fhir"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
RESTFUL = "http://hl7.org/fhir/restful-interaction"

# (type, subtype, action, detail, AuditEvent.type code, standard subtype code)
EVENTS = [
    ("rest", "read", "R", {"patients": ["p1"], "entities": ["Patient/p1"], "status": 200}, "rest", "read"),
    ("rest", "vread", "R", {"patients": ["p1"], "entities": ["Encounter/e1"]}, "rest", "vread"),
    (
        "rest",
        "search",
        "E",
        {
            "patients": ["p1", "p2"],
            "entities": ["Encounter/e1", "Encounter/e2"],
            "query": "Encounter?patient=p1,p2&date=ge2026",
        },
        "110112",
        "search-type",
    ),
    ("rest", "history", "R", {"patients": ["p1"], "entities": ["Encounter/e1"]}, "rest", "history-instance"),
    ("rest", "history", "R", {"entities": ["Encounter/e1"], "interaction": "history-type"}, "rest", "history-type"),
    ("rest", "create", "C", {"patients": ["p1"], "entities": ["ServiceRequest/s1"], "status": 201}, "rest", "create"),
    ("rest", "update", "U", {"patients": ["p1"], "entities": ["Task/t1"]}, "rest", "update"),
    ("rest", "patch", "U", {"patients": ["p1"], "entities": ["Task/t1"]}, "rest", "patch"),
    (
        "rest",
        "transaction",
        "E",
        {"patients": ["p1"], "entities": ["Patient/p1", "ServiceRequest/s1", "Task/t1"]},
        "rest",
        "transaction",
    ),
    ("rest", "peer-read", "R", {"patients": ["p1"], "entities": ["Encounter/e1"]}, "rest", "read"),
    ("rest", "peer-list", "E", {"patients": ["p1"], "query": "participant_id=x"}, "110112", "search-type"),
    ("rest", "peer-create", "C", {"patients": ["p1"], "entities": ["Goal/g1"]}, "rest", "create"),
    ("rest", "peer-update", "U", {"patients": ["p1"], "entities": ["Goal/g1"]}, "rest", "update"),
    ("rest", "peer-action", "U", {"patients": ["p1"], "entities": ["ServiceRequest/s1"]}, "rest", "operation"),
    ("security", "token", "E", {"scope": "system/*.rs"}, "110114", "110122"),
    (
        "security",
        "access-refused",
        "E",
        {"status": 403, "reason": "scope", "path": "/fhir/Patient"},
        "110113",
        "110132",
    ),
    (
        "exchange",
        "deliver",
        "R",
        {"patients": ["p1"], "entities": ["Encounter/e1"], "endpoint": "general-ehr"},
        "110106",
        None,
    ),
    (
        "exchange",
        "poll",
        "C",
        {"patients": ["p1"], "entities": ["ServiceRequest/s9"], "endpoint": "general-ehr"},
        "110107",
        None,
    ),
    ("admin", "client-add", "C", {"client": "clinic"}, "110113", "110137"),
    ("admin", "client-disable", "U", {"client": "clinic"}, "110113", "110137"),
    ("admin", "client-enable", "U", {"client": "clinic"}, "110113", "110137"),
    ("admin", "key-rotate", "E", {"kid": "k2"}, "110113", "110129"),
    ("admin", "audit-search", "E", {"query": "date=ge2026"}, "110101", None),
    ("admin", "disclosure-report", "R", {"patients": ["p1"]}, "110101", None),
]


@pytest.mark.parametrize(
    ("type_", "subtype", "action", "detail", "fhir_type", "fhir_subtype"),
    EVENTS,
    ids=[f"{e[0]}-{e[1]}-{i}" for i, e in enumerate(EVENTS)],
)
async def test_every_kind_of_event_is_stored_chained_and_served_as_a_valid_audit_event(
    database, type_, subtype, action, detail, fhir_type, fhir_subtype
):
    org = "urn:oid:2.16.840.1.113883.19.5|riverside" if type_ in ("rest", "exchange") else None
    await write(database, record(subtype, type_=type_, action=action, organization=org, purpose="TREAT", **detail))
    [row] = await rows(database)
    assert row["seq"] == 1
    assert row["prev_hash"] == GENESIS
    assert row["hash"] == record_hash(row)
    assert (row["type"], row["subtype"], row["action"], row["outcome"]) == (type_, subtype, action, "0")

    event = audit_event(row, BASE)
    validate(event)
    assert event["type"]["code"] == fhir_type
    codes = [c["code"] for c in event["subtype"]]
    assert codes[-1] == f"{type_}.{subtype}"
    if fhir_subtype:
        assert codes[0] == fhir_subtype
    assert event["recorded"].endswith("Z")
    assert event["source"]["observer"]["display"] == "PeerLink"
    assert event["purposeOfEvent"][0]["coding"][0]["code"] == "TREAT"
    [requestor] = [a for a in event["agent"] if a["requestor"]]
    assert requestor["who"]["identifier"]["value"] == "clinic-app"
    [gateway] = [a for a in event["agent"] if a["who"].get("display") == "PeerLink"]
    riverside = {"system": "urn:oid:2.16.840.1.113883.19.5", "value": "riverside"}
    recipients = [a for a in event["agent"] if a["type"]["coding"][0]["code"] == "IRCP"]
    if type_ == "exchange":  # PeerLink asks the EHR: it is the requestor, the EHR the other end
        assert requestor is gateway
        [ehr] = [a for a in event["agent"] if a["who"].get("display") == "general-ehr"]
        assert ehr["who"]["identifier"] == riverside
        assert ehr["network"] == {"address": "10.0.0.7", "type": "2"}
        assert [r["who"]["identifier"] for r in recipients] == ([riverside] if subtype == "deliver" else [])
    else:
        assert requestor["network"] == {"address": "10.0.0.7", "type": "2"}
        assert gateway["type"]["coding"][0]["code"] == "110152"
        assert [r["who"]["identifier"] for r in recipients] == ([riverside] if org else [])
    roles = {(e["role"]["code"], e.get("what", {}).get("reference")) for e in event.get("entity", [])}
    for pid in detail.get("patients", []):
        assert ("1", f"Patient/{pid}") in roles
    for ref in detail.get("entities", []):
        assert ("1" if ref.startswith("Patient/") else "4", ref) in roles
    if "query" in detail:
        query = next(e for e in event["entity"] if e["role"]["code"] == "24")
        assert base64.b64decode(query["query"]).decode() == detail["query"]


async def test_refusals_say_why_in_outcome_desc(database):
    await write(
        database,
        record(
            "access-refused",
            type_="security",
            action="E",
            outcome="4",
            client_id=None,
            status=401,
            reason="send an access token",
        ),
    )
    event = audit_event((await rows(database))[0], BASE)
    validate(event)
    assert event["outcome"] == "4"
    assert event["outcomeDesc"] == "HTTP 401: send an access token"
    assert event["agent"][0]["who"] == {"display": "unidentified client"}


async def test_records_written_one_after_another_form_one_chain(database):
    for i in range(5):
        await write(database, record(n=i))
    found = await rows(database)
    assert [r["seq"] for r in found] == [1, 2, 3, 4, 5]
    assert [r["prev_hash"] for r in found[1:]] == [r["hash"] for r in found[:-1]]
    assert (await verify(database)).ok


async def test_concurrent_requests_share_a_commit_and_keep_one_chain(database):
    await asyncio.gather(*(write(database, record(n=i, patients=[f"p{i}"])) for i in range(200)))
    found = await rows(database)
    assert [r["seq"] for r in found] == list(range(1, 201))
    assert sorted(r["detail"]["n"] for r in found) == list(range(200))
    assert len(await index_rows(database)) == 200
    report = await verify(database)
    assert report.ok, report.summary()
    assert report.live_checked == 200


async def test_a_change_and_its_record_commit_together(database, program):
    now = datetime.now(UTC)
    async with database.transaction() as conn:
        await conn.execute(
            insert(review_flags).values(
                program_id=program.id, kind="participant", record_id="r1", reason="x", created_at=now
            )
        )
        await write(conn, record("create", action="C", patients=["p1"]))
    assert len(await rows(database)) == 1

    with pytest.raises(RuntimeError):
        await _change_that_fails_after_its_record(database)
    assert len(await rows(database)) == 1
    assert await index_rows(database) == [(1, "patient", "p1")]


async def _change_that_fails_after_its_record(database: Database) -> None:
    async with database.transaction() as conn:
        await write(conn, record("create", action="C", patients=["p2"]))
        raise RuntimeError("the change failed after its audit record was written")


async def test_write_many_keeps_the_order_given(database):
    await write_many(database, [record(n=i) for i in range(5)])
    async with database.transaction() as conn:
        await write_many(conn, [record(n=i) for i in range(5, 8)])
    assert [r["detail"]["n"] for r in await rows(database)] == list(range(8))


async def test_detail_is_kept_as_json_both_databases_give_back_unchanged(database):
    await write(
        database,
        record(
            query="name=a\x00b",
            ratio=0.1,
            big=1e20,
            nested={"when": datetime(2026, 1, 2, tzinfo=UTC), 3: "three"},
            items=("a", 1, None, True),
            client_id=None,
        ),
    )
    await write(database, record(client_id="c" * 500, organization="o" * 1000, address="a" * 300, subtype="r" * 99))
    first, second = await rows(database)
    assert first["detail"] == {
        "query": "name=a\ufffdb",
        "ratio": "0.1",
        "big": "1e+20",
        "nested": {"when": "2026-01-02T00:00:00+00:00", "3": "three"},
        "items": ["a", 1, None, True],
    }
    assert (len(second["client_id"]), len(second["organization"]), len(second["address"])) == (100, 300, 100)
    assert len(second["subtype"]) == 40
    assert (await verify(database)).ok


async def test_a_record_that_cannot_be_written_is_a_503(tmp_path):
    broken = Database(f"sqlite+aiosqlite:///{tmp_path / 'not-migrated.db'}")
    try:
        with pytest.raises(AuditUnavailable) as raised:
            await write(broken, record())
        assert raised.value.status == 503
        assert raised.value.fhir_code == "transient"
        async with broken.transaction() as conn:
            with pytest.raises(AuditUnavailable):
                await write(conn, record())
    finally:
        await broken.dispose()


async def test_a_failed_batch_does_not_stop_later_ones(database, tmp_path):
    await write(database, record(n=1))
    broken = Database(f"sqlite+aiosqlite:///{tmp_path / 'not-migrated.db'}")
    try:
        results = await asyncio.gather(*(write(broken, record()) for _ in range(3)), return_exceptions=True)
        assert all(isinstance(r, AuditUnavailable) for r in results)
    finally:
        await broken.dispose()
    await write(database, record(n=2))
    assert [r["seq"] for r in await rows(database)] == [1, 2]


async def test_a_batch_that_fails_midway_leaves_the_database_as_it_was(database):
    await write(database, record(n=1))
    with pytest.MonkeyPatch.context() as patch:
        break_audit_writes(patch)
        results = await asyncio.gather(*(write(database, record(n=i)) for i in range(5)), return_exceptions=True)
    assert all(isinstance(r, AuditUnavailable) for r in results)
    await asyncio.gather(*(write(database, record(n=i)) for i in range(2, 12)))  # the connections are clean
    assert [r["seq"] for r in await rows(database)] == list(range(1, 12))
    assert (await verify(database)).ok


async def test_an_unreachable_database_is_a_503(database):
    url = database.url.set(database="peerlink_no_such_database") if not database.is_sqlite else None
    if url is None:
        pytest.skip("covered for SQLite by test_a_record_that_cannot_be_written_is_a_503")
    unreachable = Database(url.render_as_string(hide_password=False))
    try:
        with pytest.raises(AuditUnavailable):
            await write(unreachable, record())
    finally:
        await unreachable.dispose()
