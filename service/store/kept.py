"""Kept statements (built once, values as bind parameters, service.fhir.search) run on PostgreSQL's
driver: compiled once per statement object for the connection's dialect, then each run is the SQL
text and its arguments on the pooled asyncpg connection (prepared once per connection by asyncpg's
statement cache) — no per-run statement lookup, result processing or hand-off to a greenlet
(profiled: a third of a search's database time on PostgreSQL). SQLite, and statements whose SQL is
finished only at run time (expanding IN lists), run through SQLAlchemy as usual."""

from __future__ import annotations

from typing import Any, cast
from weakref import WeakKeyDictionary

from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler


class Row:
    """A record read by name, as SQLAlchemy's rows are (``row.pk``)."""

    __slots__ = ("_record",)

    def __init__(self, record: Any) -> None:
        self._record = record

    def __getattr__(self, name: str) -> Any:
        try:
            return self._record[name]
        except KeyError:
            raise AttributeError(name) from None


Compiled = tuple[str, tuple[str, ...], dict[str, Any], tuple[tuple[int, Any], ...]]


_compiled: WeakKeyDictionary[ClauseElement, Compiled | None] = WeakKeyDictionary()


def _compile(statement: ClauseElement, dialect: Dialect) -> Compiled | None:
    compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
    sql = compiled.string
    names = tuple(compiled.positiontup or ())
    binds = [compiled.binds[n] for n in names]
    if "POSTCOMPILE" in sql or any(b.expanding for b in binds):
        return None
    # the values the statement holds itself (constants of the SQL; the rest come with each run), and
    # the types' own conversion of a value on its way in (a UTC datetime's), as SQLAlchemy applies it
    fixed = {n: b.effective_value for n, b in zip(names, binds, strict=True) if not b.required}
    processors = tuple((i, p) for i, b in enumerate(binds) if (p := b.type.bind_processor(dialect)) is not None)
    return sql, names, fixed, processors


async def fetch_all(conn: Any, statement: ClauseElement, parameters: dict[str, Any], kept: bool = True) -> list[Any]:
    """The rows of a statement run with ``parameters`` (every bind parameter it has no value for).
    ``kept``: a statement built once and run many times, whose columns need no conversion on their
    way out (the driver's values are the rows' values: ints, strings, bytes, timestamptz as UTC
    datetimes); otherwise, or on SQLite, SQLAlchemy runs it."""
    dialect = getattr(conn, "dialect", None)
    if not kept or dialect is None or dialect.name != "postgresql":
        return list((await conn.execute(statement, parameters)).all())
    if statement in _compiled:
        compiled = _compiled[statement]
    else:
        compiled = _compiled[statement] = _compile(statement, dialect)
    if compiled is None:
        return list((await conn.execute(statement, parameters)).all())
    sql, names, fixed, processors = compiled
    arguments = [parameters[n] if n in parameters else fixed[n] for n in names]
    for i, process in processors:
        arguments[i] = process(arguments[i])
    driver = (await conn.get_raw_connection()).driver_connection
    records = await driver.fetch(sql, *arguments)
    return [Row(r) for r in records]
