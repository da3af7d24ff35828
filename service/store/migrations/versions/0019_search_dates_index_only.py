"""fhir_search: the dates' index holds only the rows with a date, and the resource's pk (PostgreSQL)

A date criterion reads its matches from ``ix_fhir_search_program_id_resource_type_param_moment``; the
resource's pk was read from the table, a heap page per index row. With ``resource_pk`` in the index
(INCLUDE) the matches are an index-only scan: at 1,000,000 resources (`tests/bench/bench_million.py`) a
day's 836 Encounters after a page's cursor went from 1,200 buffers (0.95 ms) to 25 (0.25 ms), EXPLAIN
ANALYZE. An INCLUDE index keeps no duplicates together, and most rows (tokens) have no date: made for every
row it was 1,256 MB there; for the 988,768 rows with a date (``WHERE moment IS NOT NULL``, which every date
condition implies) it is 94 MB. SQLite has neither: the index there stays as it is. The index is made
again: on a large table, plan the migration for a quiet hour (it holds a lock on fhir_search while it
builds).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06 21:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "ix_fhir_search_program_id_resource_type_param_moment"
COLUMNS = ["program_id", "resource_type", "param", "moment"]


def _remake(include: list[str], where: str | None) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index(NAME, table_name="fhir_search")
    clause = sa.text(where) if where is not None else None
    op.create_index(NAME, "fhir_search", COLUMNS, postgresql_include=include, postgresql_where=clause)


def upgrade() -> None:
    _remake(["resource_pk"], "moment IS NOT NULL")


def downgrade() -> None:
    _remake([], None)
