"""GET /fhir/AuditEvent: admin scope, every search parameter, paging, tenancy, valid AuditEvents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mappings.models import validate
from service.audit import write
from tests.audit.conftest import login, record, rows

NOW = datetime.now(UTC).replace(microsecond=0)
DAY = (NOW - timedelta(days=3)).replace(hour=10, minute=0, second=0)
"""The events' day at ten in the morning: hours added to it stay on that day whenever the tests run."""
ORG = "urn:oid:2.16.840.1.113883.19.5|riverside"


@pytest.fixture
async def events(database, program):
    """A day of varied events of the program (and one of another program)."""
    day = DAY
    pid = program.id
    made = [
        record(
            "read",
            recorded=day,
            program_id=pid,
            client_id="clinic",
            organization=ORG,
            patients=["p1"],
            entities=["Patient/p1"],
        ),
        record(
            "search",
            action="E",
            recorded=day + timedelta(hours=1),
            program_id=pid,
            client_id="clinic",
            organization=ORG,
            patients=["p1", "p2"],
            entities=["Encounter/e1", "Encounter/e2"],
            query="Encounter?patient=p1,p2",
        ),
        record(
            "history",
            recorded=day + timedelta(hours=2),
            program_id=pid,
            client_id="peer-app",
            patients=["p2"],
            entities=["Encounter/e2"],
        ),
        record(
            "create",
            action="C",
            recorded=day + timedelta(hours=3),
            program_id=pid,
            client_id="clinic",
            organization=ORG,
            patients=["p1"],
            entities=["ServiceRequest/s1"],
        ),
        record(
            "token",
            type_="security",
            action="E",
            outcome="4",
            recorded=day + timedelta(hours=4),
            client_id="stranger",
            program_id=None,
            reason="unknown client",
        ),
        record(
            "client-add",
            type_="admin",
            action="C",
            recorded=day + timedelta(hours=5),
            program_id=pid,
            client_id="privacy-officer",
            client="clinic",
        ),
        record(
            "read",
            recorded=day + timedelta(hours=6),
            program_id="another-program",
            client_id="elsewhere",
            patients=["p1"],
        ),
    ]
    for item in made:
        await write(database, item)
    return made


async def _search(gateway, admin, query: str = "", **kw):
    response = await gateway.get(f"/fhir/AuditEvent{query}", headers=admin, **kw)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    bundle = response.json()
    assert bundle["type"] == "searchset"
    validate(bundle)
    for entry in bundle.get("entry", []):
        validate(entry["resource"])
        assert entry["fullUrl"].endswith(f"/fhir/AuditEvent/{entry['resource']['id']}")
    return bundle


def _subtypes(bundle) -> list[str]:
    return [e["resource"]["subtype"][-1]["code"] for e in bundle.get("entry", [])]


async def test_the_log_is_served_newest_first_to_the_programs_administrators(gateway, admin, events):
    bundle = await _search(gateway, admin, "?date=lt" + (NOW - timedelta(days=1)).date().isoformat())
    assert _subtypes(bundle) == [
        "admin.client-add",
        "security.token",  # no program: the gateway's own, shown to every program's administrators
        "rest.create",
        "rest.history",
        "rest.search",
        "rest.read",
    ]
    search = next(e["resource"] for e in bundle["entry"] if e["resource"]["subtype"][-1]["code"] == "rest.search")
    assert search["type"]["code"] == "110112"
    assert any(e["role"]["code"] == "24" for e in search["entity"])


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?patient=p1", ["rest.create", "rest.search", "rest.read"]),
        ("?patient=Patient/p2", ["rest.history", "rest.search"]),
        ("?patient=p1,p2&patient=p2", ["rest.history", "rest.search"]),
        ("?entity=Encounter/e2", ["rest.history"]),  # a search's results are found by their patients
        ("?entity=Patient/p1", ["rest.create", "rest.search", "rest.read"]),  # = patient=p1
        ("?agent=clinic", ["rest.create", "rest.search", "rest.read"]),
        ("?agent=peer-app,stranger", ["security.token", "rest.history"]),
        ("?action=C", ["admin.client-add", "rest.create"]),
        ("?outcome=4", ["security.token"]),
        ("?type=rest", ["rest.create", "rest.history", "rest.search", "rest.read"]),
        ("?type=http://dicom.nema.org/resources/ontology/DCM|110112", ["rest.search"]),
        ("?type=110114", ["security.token"]),
        ("?type=110113", ["admin.client-add"]),
        ("?type=security,admin", ["admin.client-add", "security.token"]),
        ("?subtype=search-type", ["rest.search"]),
        ("?subtype=history-instance", ["rest.history"]),
        ("?subtype=read,create", ["rest.create", "rest.read"]),
        ("?subtype=client-add", ["admin.client-add"]),
    ],
)
async def test_search_parameters(gateway, admin, events, query, expected):
    day = DAY.date().isoformat()
    bundle = await _search(gateway, admin, f"{query}&date={day}")
    assert _subtypes(bundle) == expected


async def test_date_prefixes(gateway, admin, events):
    day = DAY
    at = (day + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert _subtypes(await _search(gateway, admin, f"?date=ge{at}&date=lt{day.date() + timedelta(days=1)}")) == [
        "admin.client-add",
        "security.token",
        "rest.create",
        "rest.history",
    ]
    assert _subtypes(await _search(gateway, admin, f"?date=gt{at}&date=le{day.date()}")) == [
        "admin.client-add",
        "security.token",
        "rest.create",
    ]
    assert _subtypes(await _search(gateway, admin, f"?date={at}")) == ["rest.history"]
    assert _subtypes(await _search(gateway, admin, f"?date=ne{day.date()}&date=lt{day.date()}")) == []
    month = day.strftime("%Y-%m")
    assert len(_subtypes(await _search(gateway, admin, f"?date={month}&type=rest"))) == 4


async def test_pages_follow_the_next_link(gateway, admin, events):
    day = DAY.date().isoformat()
    bundle = await _search(gateway, admin, f"?date={day}&_count=2")
    seen = _subtypes(bundle)
    while True:
        following = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        if not following:
            break
        response = await gateway.get(following[0].removeprefix("http://peerlink.test"), headers=admin)
        bundle = response.json()
        validate(bundle)
        seen += _subtypes(bundle)
    assert seen == ["admin.client-add", "security.token", "rest.create", "rest.history", "rest.search", "rest.read"]


@pytest.mark.parametrize(
    "query",
    ["?unknown=1", "?date=yesterday", "?action=X", "?outcome=3", "?_count=0", "?_cursor=nonsense", "?patient="],
)
async def test_bad_searches_are_400_operation_outcomes(gateway, admin, query):
    response = await gateway.get(f"/fhir/AuditEvent{query}", headers=admin)
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"


async def test_lenient_handling_ignores_unknown_parameters(gateway, admin, events):
    response = await gateway.get("/fhir/AuditEvent?unknown=1", headers={**admin, "Prefer": "handling=lenient"})
    assert response.status_code == 200


async def test_the_admin_scope_is_needed_and_the_refusal_is_audited(gateway, database, program, events):
    reader = await login(gateway, database, program, "reader", "system/*.rs")
    response = await gateway.get("/fhir/AuditEvent", headers=reader)
    assert response.status_code == 403
    assert response.json()["issue"][0]["code"] == "forbidden"
    refused = (await rows(database))[-1]
    assert (refused["type"], refused["subtype"], refused["outcome"]) == ("security", "access-refused", "4")
    assert refused["client_id"] == "reader"
    assert (await gateway.get("/fhir/AuditEvent")).status_code == 401


async def test_each_search_is_itself_audited(gateway, admin, database, events):
    await _search(gateway, admin, "?patient=p1&_count=5")
    last = (await rows(database))[-1]
    assert (last["type"], last["subtype"], last["client_id"]) == ("admin", "audit-search", "privacy-officer")
    assert last["detail"]["query"] == "patient=p1&_count=5"
    bundle = await _search(gateway, admin, "?type=110101")
    assert _subtypes(bundle)[0] == "admin.audit-search"
