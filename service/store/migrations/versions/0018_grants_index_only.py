"""access_grants: the boundary's index carries what the boundary filters on (PostgreSQL INCLUDE)

Every row a searcher of an outside organisation may see is checked by an EXISTS on ``access_grants``
(``service.auth.boundary.visible``): the index finds the participant's grants of the type, and the
period (``starts``, ``ends``), ``source_id`` and ``origin_kind`` were read from the table. With them in
the index (INCLUDE) the check is an index-only scan: at 1,000,000 resources
(`tests/bench/bench_million.py`) the count of a day's 348 Encounters went from 8.1 to 3.9 ms, 0.031 to
0.015 ms a row. SQLite has no INCLUDE: the index there stays as it is.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 13:20:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "ix_access_grants_program_id_organization_patient_id_res_5069"
COLUMNS = ["program_id", "organization", "patient_id", "resource_type"]


def _remake(include: list[str]) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index(NAME, table_name="access_grants")
    op.create_index(NAME, "access_grants", COLUMNS, postgresql_include=include)


def upgrade() -> None:
    _remake(["starts", "ends", "source_id", "origin_kind"])


def downgrade() -> None:
    _remake([])
