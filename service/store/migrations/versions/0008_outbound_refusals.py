"""outbound refusals: a connection's refused transaction Bundles, and what the EHR said of a dead letter

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 06:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from service.store.types import UTCDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ehr_connections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bundles_refused_at", UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("bundles_refused_reason", sa.String(length=500), nullable=True))
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ehr_status", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("ehr_outcome", sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("ehr_outcome")
        batch_op.drop_column("ehr_status")
    with op.batch_alter_table("ehr_connections", schema=None) as batch_op:
        batch_op.drop_column("bundles_refused_reason")
        batch_op.drop_column("bundles_refused_at")
