"""GET /fhir/AuditEvent on the one FHIR search engine: _summary=count, total, the engine's keyset
cursor, _sort and the unknown-parameter handling every other type has."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from mappings.models import validate
from service.audit import write
from service.audit.search import AUDIT_PARAMS, NEWEST_FIRST, parse_audit
from service.domain.errors import BadRequest
from tests.audit.conftest import record, rows, write_records

NOW = datetime.now(UTC).replace(microsecond=0)
DAY = (NOW - timedelta(days=3)).replace(hour=10, minute=0, second=0)
"""Ten in the morning: the day's events (up to eight hours after it) stay on that day whenever the tests run."""


async def _get(gateway, headers, query: str, status: int = 200, *, valid: bool = True):
    response = await gateway.get(f"/fhir/AuditEvent{query}", headers=headers)
    assert response.status_code == status, response.text
    body = response.json()
    if valid:  # a subsetted resource (_elements) need not be a valid one
        validate(body)
    return body


def _ids(bundle) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


def _next(bundle) -> str | None:
    links = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
    return links[0] if links else None


@pytest.fixture
async def day_of_events(database, program):
    """Nine events of the program on one day, written out of time order (seq order != recorded order),
    and one of another program."""
    hours = [5, 1, 8, 0, 3, 7, 2, 6, 4]
    for n, hour in enumerate(hours):
        await write(database, record(recorded=DAY + timedelta(hours=hour), program_id=program.id, n=n))
    await write(database, record(recorded=DAY, program_id="another-program"))
    return hours


async def test_summary_count_is_the_total_and_no_entries(gateway, admin, day_of_events):
    bundle = await _get(gateway, admin, f"?date={DAY.date()}&_summary=count")
    assert bundle["total"] == 9
    assert "entry" not in bundle
    bundle = await _get(gateway, admin, f"?date={DAY.date()}&agent=nobody&_summary=count")
    assert bundle["total"] == 0


async def test_the_first_page_carries_the_total(gateway, admin, day_of_events):
    bundle = await _get(gateway, admin, f"?date={DAY.date()}&_count=4")
    assert bundle["total"] == 9
    assert len(_ids(bundle)) == 4
    assert _next(bundle) is not None
    none = await _get(gateway, admin, f"?date={DAY.date()}&_count=4&_total=none")
    assert "total" not in none and _ids(none) == _ids(bundle)


@pytest.mark.parametrize("sort", ["", "&_sort=date", "&_sort=-date"])
async def test_paging_to_the_end_returns_every_event_once(gateway, admin, database, program, sort):
    await write_records(database, 23, program_id=program.id)
    ours = {str(r["seq"]) for r in await rows(database) if r["program_id"] in (program.id, None)}
    bundle = await _get(gateway, admin, f"?_count=5{sort}")
    assert bundle["total"] == len(ours)
    seen = _ids(bundle)
    pages = 1
    while (following := _next(bundle)) is not None:
        assert "_cursor" in parse_qs(urlsplit(following).query)
        # every page is itself audited: those events are newer than the paging and never join it
        bundle = await _get(gateway, admin, "?" + urlsplit(following).query)
        assert bundle["total"] == len(ours)
        seen += _ids(bundle)
        pages += 1
    assert len(seen) == len(set(seen)) and set(seen) == ours
    assert pages == -(-len(ours) // 5)


async def test_sort_by_date_either_way(gateway, admin, day_of_events):
    def hours(bundle) -> list[int]:
        return [datetime.fromisoformat(e["resource"]["recorded"]).hour - DAY.hour for e in bundle["entry"]]

    newest_written_first = await _get(gateway, admin, f"?date={DAY.date()}")
    assert [(h + 24) % 24 for h in hours(newest_written_first)] == list(reversed(day_of_events))
    ascending = await _get(gateway, admin, f"?date={DAY.date()}&_sort=date")
    assert [(h + 24) % 24 for h in hours(ascending)] == sorted(day_of_events)
    descending = await _get(gateway, admin, f"?date={DAY.date()}&_sort=-date&_count=4")
    seen = _ids(descending)
    while (following := _next(descending)) is not None:
        descending = await _get(gateway, admin, "?" + urlsplit(following).query)
        seen += _ids(descending)
    assert seen == list(reversed(_ids(ascending)))
    outcome = await _get(gateway, admin, "?_sort=agent", 400)
    assert outcome["issue"][0]["expression"] == ["_sort"]


async def test_unknown_parameters_are_handled_as_for_encounter(gateway, admin, day_of_events):
    strict = {**admin, "Prefer": "handling=strict"}
    lenient = {**admin, "Prefer": "handling=lenient"}
    answers = {}
    for resource_type in ("Encounter", "AuditEvent"):
        refused = await gateway.get(f"/fhir/{resource_type}?nickname=x", headers=strict)
        assert refused.status_code == 400
        issue = refused.json()["issue"][0]
        assert refused.json()["resourceType"] == "OperationOutcome"
        ignored = await gateway.get(f"/fhir/{resource_type}?nickname=x&_count=1", headers=lenient)
        assert ignored.status_code == 200, ignored.text
        outcomes = [e["resource"] for e in ignored.json()["entry"] if e["search"]["mode"] == "outcome"]
        assert len(outcomes) == 1
        assert "nickname" not in ignored.json()["link"][0]["url"]
        answers[resource_type] = (issue["code"], issue["expression"], outcomes[0]["issue"][0]["expression"])
    assert answers["AuditEvent"] == answers["Encounter"] == ("invalid", ["nickname"], ["nickname"])


async def test_elements_and_id(gateway, admin, day_of_events):
    first = _ids(await _get(gateway, admin, f"?date={DAY.date()}&_count=1"))[0]
    bundle = await _get(gateway, admin, f"?_id={first}&_elements=recorded", valid=False)
    [entry] = bundle["entry"]
    assert entry["resource"]["id"] == first and "recorded" in entry["resource"] and "agent" not in entry["resource"]
    assert entry["resource"]["meta"]["tag"][-1]["code"] == "SUBSETTED"
    others = await _get(gateway, admin, f"?_id:not={first}&date={DAY.date()}&_summary=count")
    assert others["total"] == 8


# --- the parser (pure) -----------------------------------------------------------------------------------------


def test_the_audit_parser_is_the_engines_with_the_logs_table():
    query = parse_audit([("date", "ge2026-01-01"), ("agent", "clinic"), ("_count", "3")])
    assert query.resource_type == "AuditEvent" and query.count == 3
    assert [c.param for c in query.criteria] == ["date", "agent"]
    assert query.sort == NEWEST_FIRST
    assert parse_audit([("_sort", "-date")]).sort.key == "date"
    assert parse_audit([("_summary", "count")]).summary_count
    assert parse_audit([("nickname", "x")], lenient=True).ignored == ("nickname",)
    assert set(AUDIT_PARAMS) == {"date", "patient", "agent", "entity", "action", "outcome", "type", "subtype"}


@pytest.mark.parametrize(
    "items",
    [
        [("nickname", "x")],
        [("action", "X")],
        [("action", "C,Q")],
        [("outcome", "3")],
        [("_count", "0")],
        [("patient", "")],
        [("_revinclude", "Encounter:patient")],
        [("_include", "AuditEvent:patient")],
        [("date", "yesterday")],
        [("_sort", "patient")],
    ],
)
def test_the_audit_parser_refuses(items):
    with pytest.raises(BadRequest):
        parse_audit(items)


def test_date_sort_follows_the_parameter_table():
    from service.fhir.search.parsing import date_sort, sort
    from service.fhir.search_params import SEARCH_PARAMS

    assert date_sort(AUDIT_PARAMS) == "date"
    assert date_sort(SEARCH_PARAMS["ServiceRequest"]) == "authored"
    assert date_sort(SEARCH_PARAMS["Practitioner"]) is None
    assert sort("AuditEvent", "-date", AUDIT_PARAMS).key == "date"
    with pytest.raises(BadRequest):
        sort("AuditEvent", "date", {})
