"""The SQL a query's criteria compile to (service.fhir.search.sql): the bounds of one single-valued date
parameter share one EXISTS over one index row (a range the index scans between both bounds); a repeating
one's, a negated one's and other parameters' stay conditions of their own."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import and_
from sqlalchemy.dialects import postgresql

from service.fhir.search.execute import KEPT_STATEMENTS, _kept, prepare
from service.fhir.search.query import Criterion, Cursor, DateValue, ReferenceValue, SearchQuery, Sort, StringValue
from service.fhir.search.sql import Compiler

LOW, HIGH = datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 1, 6, tzinfo=UTC)


def bound(param: str, prefix: str, negate: bool = False) -> Criterion:
    return Criterion(param, "date", (DateValue(prefix, LOW, HIGH),), negate=negate)


def sql(resource_type: str, *criteria: Criterion) -> str:
    conditions = Compiler("program", resource_type).criteria(criteria)
    return str(and_(*conditions).compile(dialect=postgresql.dialect()))


def test_the_bounds_of_one_date_parameter_are_one_range_on_one_index_row():
    text = sql("Encounter", bound("date", "ge"), bound("date", "lt"))
    assert text.count("EXISTS") == 1
    assert "moment >=" in text and "moment <" in text


def test_other_parameters_and_other_date_parameters_stay_apart():
    patient = Criterion("patient", "reference", (ReferenceValue(("Patient/1",)),))
    text = sql("Encounter", patient, bound("date", "ge"), bound("date", "lt"))
    assert text.count("EXISTS") == 2
    text = sql("ServiceRequest", bound("authored", "ge"), bound("date", "lt"))
    assert text.count("EXISTS") == 2


def test_a_repeating_date_a_negated_bound_and_ne_are_not_merged():
    assert sql("Goal", bound("target-date", "ge"), bound("target-date", "lt")).count("EXISTS") == 2
    assert sql("Encounter", bound("date", "ge"), bound("date", "lt", negate=True)).count("EXISTS") == 2
    assert sql("Encounter", bound("date", "ge"), bound("date", "ne")).count("EXISTS") == 2


def _query(*criteria: Criterion, resource_type: str = "Encounter") -> SearchQuery:
    return SearchQuery(resource_type, criteria)


def test_a_plan_holds_shapes_apart_from_values():
    patient = Criterion("patient", "reference", (ReferenceValue(("Patient/secret-1",)),))
    name = Criterion("name", "string", (StringValue("50%_off/x", "contains"),))
    shapes, values = Compiler("program", "Patient").plan((patient, name, bound("birthdate", "ge")))
    assert "secret" not in repr(shapes) and "50%" not in repr(shapes)
    # in the order the SQL takes them; LIKE patterns escaped as SQLAlchemy's autoescape does
    assert values == ["Patient/secret-1", "%50/%/_off//x%", LOW, HIGH]


def test_one_statement_serves_every_search_of_a_shape():
    def patient(pid: str) -> Criterion:
        return Criterion("patient", "reference", (ReferenceValue((f"Patient/{pid}",)),))

    first, first_values = prepare("program-1", _query(patient("a"), bound("date", "ge")), None)
    second, second_values = prepare("program-2", _query(patient("b"), bound("date", "ge")), None)
    assert first is second  # same shape: the statement built once
    assert (first_values["program"], first_values["v0"]) == ("program-1", "Patient/a")
    assert (second_values["program"], second_values["v0"]) == ("program-2", "Patient/b")
    bounded, bounded_values = prepare("program-1", _query(patient("a")), "org-1")
    assert bounded is not first and bounded_values["organization"] == "org-1" and "today" in bounded_values
    other, _ = prepare("program-1", _query(patient("a"), bound("date", "lt")), None)
    assert other is not first  # another prefix: another shape
    # no value a request sent is inside the statement: only bind parameters named by position
    text = str(first.rows.compile(dialect=postgresql.dialect()))
    assert "Patient/a" not in text and "program-1" not in text


def test_kept_statements_are_bounded():
    for n in range(KEPT_STATEMENTS + 20):
        ids = tuple(str(i) for i in range(n % 40 + 1))
        prepare("program", _query(Criterion("_id", "_id", ids), *(bound("date", "ge") for _ in range(n // 40))), None)
    assert len(_kept) <= KEPT_STATEMENTS


def test_a_later_page_in_pk_order_bounds_the_index_rows_too():
    patient = Criterion("patient", "reference", (ReferenceValue(("Patient/a",)),))
    missing = Criterion("encounter", "reference", missing=True)
    for sort, sign in ((Sort(""), ">"), (Sort("-_id", None, descending=True), "<")):
        later = SearchQuery(
            "Encounter", (patient, missing, bound("date", "ge")), sort=sort, cursor=Cursor(sort.text, None, 7, 9)
        )
        built, values = prepare("program", later, None)
        text = str(built.rows.compile(dialect=postgresql.dialect()))
        assert text.count(f"resource_pk {sign} %(cursor_pk)s") == 3 and values["cursor_pk"] == 7
    first, _ = prepare("program", SearchQuery("Encounter", (patient,)), None)
    assert "cursor_pk" not in str(first.rows.compile(dialect=postgresql.dialect()))
