"""Kept statements (built once, values as bind parameters: service.fhir.search) run on the driver:
compiled once per statement object for the connection's dialect, then each run is the SQL text and
its arguments on the driver's connection — PostgreSQL's asyncpg connection of the read pool (which
prepares it once per connection), or a SQLite file's loop reader — with the types' own conversions
on the way in and out, as SQLAlchemy applies them; no per-run statement lookup, execution context or
result object (profiled: a third of a search's database time). Other connections (SQLite in memory),
and statements whose SQL is finished only at run time (expanding IN lists), run through SQLAlchemy."""

from __future__ import annotations

import keyword
from collections import namedtuple
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast
from weakref import WeakKeyDictionary

from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler


@dataclass(frozen=True)
class Compiled:
    sql: str
    names: tuple[str, ...]
    """The bind parameters, in the order of the SQL's placeholders."""
    fixed: dict[str, Any]
    """The values the statement holds itself (constants of its SQL)."""
    into: tuple[tuple[int, Any], ...]
    """(argument position, the type's conversion of a value on its way in)."""
    columns: dict[str, int]
    out: tuple[tuple[int, Any], ...]
    """(column position, the type's conversion of a value on its way out)."""
    row: Any
    """Makes a row of the values (:func:`_maker`)."""


class Row:
    """A row read by column name, as SQLAlchemy's rows are (``row.pk``): for the statements whose
    column names cannot name a tuple's fields (:func:`_row_class`)."""

    __slots__ = ("_columns", "_values")

    def __init__(self, values: Any, columns: dict[str, int]) -> None:
        self._values = values
        self._columns = columns

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[self._columns[name]]
        except KeyError:
            raise AttributeError(name) from None


@lru_cache(maxsize=512)
def _row_class(names: tuple[str, ...]) -> Any:
    """A named tuple of the statement's columns, when their names can be its fields: reading a field
    is a C-level descriptor (~45 ns) where ``Row.__getattr__`` runs only after the normal lookup has
    failed with an AttributeError (~740 ns; a search reads several fields a row). None when a name is
    not an identifier, is a keyword, starts with "_" or repeats."""
    usable = all(n.isidentifier() and not keyword.iskeyword(n) and not n.startswith("_") for n in names)
    if not usable or len(set(names)) != len(names):
        return None
    return namedtuple("KeptRow", names)


def _maker(columns: dict[str, int]) -> Any:
    """Makes a row of a statement's values: a named tuple (:func:`_row_class`) when every column has
    its own usable name, else a :class:`Row`."""
    names = tuple(sorted(columns, key=columns.__getitem__))
    fields = _row_class(names) if list(columns.values()) == list(range(len(names))) else None
    if fields is None:
        return lambda values: Row(values, columns)
    new = tuple.__new__
    return lambda values: new(fields, values)


_compiled: dict[str, WeakKeyDictionary[ClauseElement, Compiled | None]] = {
    "asyncpg": WeakKeyDictionary(),
    "sqlite": WeakKeyDictionary(),
}
"""Per driver (one process may serve both backends: the tests do)."""


def _compile(statement: ClauseElement, dialect: Dialect) -> Compiled | None:
    compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
    sql = compiled.string
    names = tuple(compiled.positiontup or ())
    binds = [compiled.binds[n] for n in names]
    if "POSTCOMPILE" in sql or any(b.expanding for b in binds):
        return None
    # the types' conversions as the dialect has them (SQLAlchemy's own lookup: a type adapted to the
    # dialect, e.g. SQLite's DATETIME under a TypeDecorator)
    fixed = {n: b.effective_value for n, b in zip(names, binds, strict=True) if not b.required}
    into = tuple((i, p) for i, b in enumerate(binds) if (p := b.type._cached_bind_processor(dialect)) is not None)
    selected = list(cast(Any, statement).selected_columns)
    columns = {c.key: i for i, c in enumerate(selected)}
    processors = [c.type._cached_result_processor(dialect, None) for c in selected]
    out = tuple((i, p) for i, p in enumerate(processors) if p is not None)
    return Compiled(sql, names, fixed, into, columns, out, _maker(columns))


def _driver(conn: Any) -> tuple[str, Any] | None:
    dialect = getattr(conn, "dialect", None)
    if dialect is None:
        return None
    if dialect.name == "postgresql":
        return "asyncpg", dialect
    if dialect.name == "sqlite" and hasattr(conn, "driver_connection"):
        return "sqlite", dialect
    return None


async def fetch_all(
    conn: Any, statement: ClauseElement, parameters: dict[str, Any], kept: bool = True, planned_once: Any = None
) -> list[Any]:
    """The rows of a statement run with ``parameters`` (every bind parameter it has no value for).
    ``kept``: a statement built once and run many times (run on the driver where there is one).
    ``planned_once``: on PostgreSQL, where to run a statement whose one plan serves every value (an
    asynchronous context manager of an asyncpg connection whose session plans a prepared statement
    once: ``Database.driver``); the read pool's sessions plan every execution for its values."""
    driver = _driver(conn) if kept else None
    if driver is None:
        return list((await conn.execute(statement, parameters)).all())
    kind, dialect = driver
    known = _compiled[kind]
    if statement in known:
        compiled = known[statement]
    else:
        compiled = known[statement] = _compile(statement, dialect)
    if compiled is None:
        return list((await conn.execute(statement, parameters)).all())
    arguments = [parameters[n] if n in parameters else compiled.fixed[n] for n in compiled.names]
    for i, process in compiled.into:
        arguments[i] = process(arguments[i])
    records: list[Any]
    if kind == "asyncpg" and planned_once is not None:
        async with planned_once() as connection:
            records = await connection.fetch(compiled.sql, *arguments)
    elif kind == "asyncpg":
        connection = (await conn.get_raw_connection()).driver_connection
        records = await connection.fetch(compiled.sql, *arguments)
    else:  # a SQLite file's reader on the event loop (a WAL read never waits)
        records = conn.driver_connection().execute(compiled.sql, arguments).fetchall()
    if compiled.out:
        converted = []
        for record in records:
            values = list(record)
            for i, process in compiled.out:
                values[i] = process(values[i])
            converted.append(values)
        records = converted
    make = compiled.row
    return [make(record) for record in records]
