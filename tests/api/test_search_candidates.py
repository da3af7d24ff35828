"""A search with one index-row criterion (a day's Encounters, a category, a status) reads that criterion's
matches first, in pk order, and looks up only the resources a page takes (``service.fhir.search.sql.
candidate``): on a first page that counts every match, and on a later page of few matches. Paging through
it gives every organisation the same entries, in the same order, with the same totals, as the general
statement does."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.dialects import postgresql

from service.fhir.search import execute, parse
from service.fhir.search.cursor import encode_cursor
from service.fhir.search.execute import prepare
from service.fhir.search.query import Cursor
from service.fhir.search.sql import MAX_CANDIDATES_TOTAL, Compiler, candidate
from tests.api.test_auth_boundaries import scene  # noqa: F401 - a fixture
from tests.api.test_boundary_by_type import ORGANIZATIONS
from tests.factories import TODAY

BASE = "http://gateway.test/fhir"


def _query(resource_type: str, *params: tuple[str, str]):
    return parse(resource_type, list(params), lenient=False, base=BASE)


def _shapes(resource_type: str, *params: tuple[str, str]):
    return Compiler("program", resource_type).plan(_query(resource_type, *params).criteria)[0]


@pytest.mark.parametrize(
    ("resource_type", "params", "read_first"),
    [
        ("Encounter", [("date", "ge2025-01-01"), ("date", "lt2025-01-02")], True),
        ("DocumentReference", [("category", "clinical-note")], True),
        ("Encounter", [("status", "finished")], True),
        ("Encounter", [("date", "2025-01-01")], True),
        ("Encounter", [("status", "finished,planned")], False),  # two values: two sets of index rows
        ("Encounter", [("status", "finished"), ("date", "ge2025")], False),  # two criteria
        ("Encounter", [("status:not", "finished")], False),
        ("Encounter", [("patient:missing", "true")], False),
        ("Encounter", [("_id", "a")], False),  # not index rows
        ("Encounter", [("_lastUpdated", "ge2025")], False),
        ("Encounter", [], False),
    ],
)
def test_the_criterion_read_first(resource_type, params, read_first):
    assert (candidate(_shapes(resource_type, *params)) is not None) is read_first


def _sql(built: Any) -> str:
    return str(built.rows.compile(dialect=postgresql.dialect()))


def test_which_pages_read_the_criterion_first():
    day = [("date", "ge2025-01-01"), ("date", "lt2025-01-02")]
    first, _ = prepare("program", _query("Encounter", *day), "urn:oid:1.2|H", postgres=True)
    assert "DISTINCT" in _sql(first) and not first.planned_once  # its count is planned for its values
    assert "DISTINCT" not in _sql(prepare("program", _query("Encounter", *day, ("_total", "none")), None)[0])
    assert "DISTINCT" not in _sql(prepare("program", _query("Encounter", *day, ("_sort", "date")), None)[0])
    few = ("_cursor", encode_cursor(Cursor("", None, 10, 20, 3)))
    later, values = prepare("program", _query("Encounter", *day, few), "urn:oid:1.2|H", postgres=True)
    assert "DISTINCT" in _sql(later) and later.planned_once and values["cursor_pk"] == 10
    assert not prepare("program", _query("Encounter", *day, few), None)[0].planned_once  # SQLite
    many = ("_cursor", encode_cursor(Cursor("", None, 10, 20, MAX_CANDIDATES_TOTAL + 1)))
    assert "DISTINCT" not in _sql(prepare("program", _query("Encounter", *day, many), None)[0])
    uncounted = ("_cursor", encode_cursor(Cursor("", None, 10, 20, None)))
    assert "DISTINCT" not in _sql(prepare("program", _query("Encounter", *day, uncounted), None)[0])


async def _walk(database: Any, program_id: str, search: tuple[str, list[tuple[str, str]]], organization: str | None):
    """Every page of the search, one entry a page: the ids in order and each page's total."""
    ids: list[str] = []
    totals: set[int | None] = set()
    cursor: list[tuple[str, str]] = []
    while True:
        query = _query(search[0], *search[1], ("_count", "1"), *cursor)
        async with database.read() as conn:
            result = await execute.run(conn, program_id, query, organization)
        ids += [m.resource_id for m in result.matches]
        totals.add(result.total)
        if result.next_cursor is None:
            return ids, totals
        cursor = [("_cursor", result.next_cursor)]


SEARCHES = [
    ("Encounter", [("date", f"ge{TODAY - timedelta(days=400)}"), ("date", f"lt{TODAY + timedelta(days=2)}")]),
    ("Encounter", [("status", "finished")]),
    ("DocumentReference", [("category", "clinical-note")]),
    ("Patient", [("gender", "female")]),
]


async def test_paging_reads_the_same_entries_as_the_general_statement(database, program, scene, monkeypatch):  # noqa: F811
    walked: dict[tuple[int, str | None], tuple[list[str], set[int | None]]] = {}
    for organization in [None, *ORGANIZATIONS]:
        for i, params in enumerate(SEARCHES):
            walked[i, organization] = await _walk(database, program.id, params, organization)
    monkeypatch.setattr(execute, "candidate", lambda shapes: None)  # the general statement, every page
    execute._kept.clear()
    seen = 0
    for (i, organization), (ids, totals) in walked.items():
        general, general_totals = await _walk(database, program.id, SEARCHES[i], organization)
        assert ids == general, (SEARCHES[i], organization)
        assert totals == general_totals == {len(general)}
        assert len(set(ids)) == len(ids)
        seen += len(ids) > 1
    execute._kept.clear()
    # the scene pages through several entries for several searches and organisations, and some see none
    assert seen >= 6
    assert any(not ids for ids, _ in walked.values())
