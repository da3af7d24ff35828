"""fhir_search: the index by resource and parameter, (resource_pk, param), in place of (resource_pk)

``_include`` reads the matches' index rows of one parameter (``resource_pk IN (...) AND param = ...``), and
every criterion's EXISTS looks for one resource's rows of one parameter. With (resource_pk) alone, at
1,000,000 resources (`tests/bench/bench_million.py`) PostgreSQL AND-ed a bitmap of the parameter's 325,000
rows with the matches' few: 43-80 ms for ``DocumentReference?patient=&_include=DocumentReference:encounter``,
0.04 ms with this index. It still serves the foreign key's cascade (resource_pk is its first column).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 13:10:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_fhir_search_resource_pk_param", "fhir_search", ["resource_pk", "param"])
    op.drop_index("ix_fhir_search_resource_pk", table_name="fhir_search")


def downgrade() -> None:
    op.create_index("ix_fhir_search_resource_pk", "fhir_search", ["resource_pk"])
    op.drop_index("ix_fhir_search_resource_pk_param", table_name="fhir_search")
