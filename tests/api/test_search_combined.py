"""On PostgreSQL a page planned once (driven by the participant) reads its one ``_include`` or
``_revinclude`` in the same statement (``service.fhir.search.combined``). Paging through such searches,
every searcher of the boundary tests gets the same matches, included resources, order and totals as
the page and its include in two statements; the included resources are those of the page's returned
matches, never of the row read past the page."""

from __future__ import annotations

from typing import Any

import pytest

from mappings.ids import fhir_id
from service.fhir.search import combined, execute, parse
from service.fhir.search.combined import Together, together
from tests.api.test_auth_boundaries import scene  # noqa: F401 - a fixture
from tests.api.test_boundary_by_type import ORGANIZATIONS

BASE = "http://gateway.test/fhir"


def _query(resource_type: str, *params: tuple[str, str]):
    return parse(resource_type, list(params), lenient=False, base=BASE)


@pytest.mark.parametrize(
    ("resource_type", "params", "expected"),
    [
        (
            "DocumentReference",
            [("_include", "DocumentReference:encounter")],
            Together(False, "DocumentReference", "encounter", "Encounter"),
        ),
        (
            "DocumentReference",
            [("_include", "DocumentReference:subject:Patient")],
            Together(False, "DocumentReference", "subject", "Patient"),
        ),
        (
            "Encounter",
            [("_revinclude", "DocumentReference:encounter")],
            Together(True, "DocumentReference", "encounter", "Encounter"),
        ),
        ("Encounter", [("_revinclude", "DocumentReference:encounter:Patient")], None),  # never the searched type
        ("Encounter", [], None),
        (
            "DocumentReference",
            [("_include", "DocumentReference:encounter"), ("_include", "DocumentReference:subject")],
            None,  # two includes: two statements
        ),
        ("QuestionnaireResponse", [("_include", "QuestionnaireResponse:questionnaire")], None),  # canonical
        ("Questionnaire", [("_revinclude", "QuestionnaireResponse:questionnaire")], None),  # canonical
    ],
)
def test_which_include_goes_with_its_page(resource_type, params, expected):
    assert together(_query(resource_type, *params)) == expected


async def _walk(database: Any, program_id: str, search: tuple[str, list[tuple[str, str]]], organization: str | None):
    """Every page of the search: each page's match ids, included ids (in order) and total."""
    pages: list[tuple[list[str], list[str], int | None]] = []
    cursor: list[tuple[str, str]] = []
    while True:
        query = _query(search[0], *search[1], *cursor)
        async with database.read() as conn:
            result = await execute.run(conn, program_id, query, organization, database.driver)
        pages.append(
            (
                [m.resource_id for m in result.matches],
                [f"{i.resource_type}/{i.resource_id}" for i in result.included],
                result.total,
            )
        )
        if result.next_cursor is None:
            return pages
        cursor = [("_cursor", result.next_cursor)]


def _searches(scene: Any) -> list[tuple[str, list[tuple[str, str]]]]:  # noqa: F811
    found = []
    for letter in "ABCDE":
        patient = fhir_id(scene.program_system, "participant", scene.participant[letter])
        for count in ("1", "50"):
            found += [
                (
                    "DocumentReference",
                    [("patient", patient), ("_include", "DocumentReference:encounter"), ("_count", count)],
                ),
                (
                    "Encounter",
                    [("patient", patient), ("_revinclude", "DocumentReference:encounter"), ("_count", count)],
                ),
                (
                    "DocumentReference",
                    [("patient", patient), ("_include", "DocumentReference:subject"), ("_count", count)],
                ),
                (
                    "Encounter",
                    [("patient", patient), ("_sort", "-date"), ("_include", "Encounter:patient"), ("_count", count)],
                ),
                (
                    "Encounter",
                    [
                        ("patient", patient),
                        ("_sort", "date"),
                        ("_revinclude", "DocumentReference:encounter"),
                        ("_count", count),
                    ],
                ),
                ("Goal", [("patient", patient), ("_include", "Goal:subject"), ("_count", count)]),  # no demographics
            ]
    return found


async def test_the_page_and_its_include_in_one_statement_find_what_two_find(database, program, scene, monkeypatch):  # noqa: F811
    if database.is_sqlite:
        pytest.skip("PostgreSQL only: SQLite runs the page and its include as two statements")
    made = []
    statement = combined.statement

    def counted(*args: Any, **kwargs: Any) -> Any:
        made.append(args)
        return statement(*args, **kwargs)

    monkeypatch.setattr(combined, "statement", counted)
    searches = _searches(scene)
    driven = len(searches)
    # pages planned once otherwise: a later page of one criterion's matches (its first page counts them, planned
    # for its values), and every page of a whole type for the program's own client (not for a partner)
    revinclude = ("_revinclude", "DocumentReference:encounter")
    searches += [
        ("Encounter", [("status", "finished"), revinclude, ("_count", "1")]),
        ("Encounter", [revinclude, ("_count", "3")]),
    ]
    walked = {}
    for organization in [None, *ORGANIZATIONS]:
        for i, search in enumerate(searches):
            before = len(made)
            walked[i, organization] = pages = await _walk(database, program.id, search, organization)
            together_pages = len(made) - before
            if i < driven:  # every page read its include with it
                assert together_pages == len(pages), (search, organization)
            elif i == driven:
                assert together_pages == len(pages) - 1, (search, organization)
            else:
                assert together_pages == (len(pages) if organization is None else 0), (search, organization)
    monkeypatch.setattr(execute, "together", lambda query: None)  # the page, then its include
    execute._kept.clear()
    for (i, organization), pages in walked.items():
        assert pages == await _walk(database, program.id, searches[i], organization), (searches[i], organization)
    execute._kept.clear()
    # pages of one match and of every match, with and without included resources, and some with none
    paged = [pages for pages in walked.values() if len(pages) > 1]
    assert paged and any(any(included for _, included, _ in pages) for pages in paged)
    assert any(not pages[0][0] for pages in walked.values())
    # a page of one encounter includes the notes about that encounter only, not those of the next one
    a = fhir_id(scene.program_system, "participant", scene.participant["A"])
    search = ("Encounter", [("patient", a), ("_revinclude", "DocumentReference:encounter"), ("_count", "1")])
    notes = {fhir_id(scene.program_system, "note", note) for note in scene.notes["A"]}
    first, second = await _walk(database, program.id, search, None)
    assert len(first[1]) == len(second[1]) == 1 and {first[1][0], second[1][0]} == {
        f"DocumentReference/{n}" for n in notes
    }
