"""Rows of kept statements (service.store.kept): read by column name, as a named tuple where the
names can be its fields, else through the general row."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import column, literal_column, select
from sqlalchemy.dialects import postgresql

from service.store import kept


def _compiled(*columns):
    compiled = kept._compile(select(*columns), postgresql.dialect())
    assert compiled is not None
    return compiled


def test_rows_of_plain_column_names_are_named_tuples():
    compiled = _compiled(column("pk"), column("resource_type"), column("body"))
    row: Any = compiled.row((7, "Encounter", b"{}"))
    assert tuple in type(row).__mro__ and row._fields == ("pk", "resource_type", "body")
    assert (row.pk, row.resource_type, row.body) == (7, "Encounter", b"{}")
    with pytest.raises(AttributeError):
        _ = row.patient_id


@pytest.mark.parametrize(
    "names",
    [
        ("pk", "_private"),  # a field cannot start with "_"
        ("pk", "class"),  # nor be a keyword
        ("pk", "two words"),  # nor be other than an identifier
    ],
)
def test_other_names_are_read_by_the_general_row(names):
    compiled = _compiled(*(literal_column("1").label(name) for name in names))
    row = compiled.row((7, 8))
    assert isinstance(row, kept.Row)
    assert getattr(row, names[0]) == 7 and getattr(row, names[1]) == 8
    with pytest.raises(AttributeError):
        _ = row.missing


def test_a_repeated_name_reads_its_last_column_as_before():
    compiled = _compiled(literal_column("1").label("n"), literal_column("2").label("m"), literal_column("3").label("n"))
    row = compiled.row((1, 2, 3))
    assert isinstance(row, kept.Row) and row.n == 3 and row.m == 2
