"""The SQL a query's criteria compile to (service.fhir.search.sql): the bounds of one single-valued date
parameter share one EXISTS over one index row (a range the index scans between both bounds); a repeating
one's, a negated one's and other parameters' stay conditions of their own."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import and_
from sqlalchemy.dialects import postgresql

from service.fhir.search.query import Criterion, DateValue, ReferenceValue
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
