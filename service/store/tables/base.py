"""The database schema's shared parts: the metadata every table joins, key types and the record spine.

Every record table has the same spine: an integer ``pk`` (keyset paging order), the record ``id``,
its ``program_id`` (tenant), a ``version`` for optimistic concurrency, timestamps and the record's
content as a JSON document. A few content fields are copied into indexed columns so lists filter
in SQL. ``record_versions`` keeps every version of every record (nothing changes without a trace).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Integer,
    MetaData,
    String,
)
from sqlalchemy.schema import SchemaItem

from ..types import JsonDocument, UTCDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

PK = BigInteger().with_variant(Integer(), "sqlite")
ID = String(64)


def spine(*, tenant: bool = True) -> list[SchemaItem]:
    items: list[SchemaItem] = [
        Column("pk", PK, primary_key=True, autoincrement=True),
        Column("id", ID, nullable=False, unique=True),
    ]
    if tenant:
        items.append(Column("program_id", ID, ForeignKey("programs.id"), nullable=False, index=True))
    items += [
        Column("version", Integer, nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
        Column("updated_at", UTCDateTime, nullable=False),
        Column("data", JsonDocument, nullable=False),
    ]
    return items
