"""bulk export jobs ($export)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from service.store.types import UTCDateTime

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "bulk_exports",
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("program_id", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=100), nullable=True),
        sa.Column("organization", sa.String(length=300), nullable=True),
        sa.Column("request", sa.String(length=2000), nullable=False),
        sa.Column("params", _JSON, nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("transaction_time", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("claimed_by", sa.String(length=100), nullable=True),
        sa.Column("claimed_until", UTCDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("progress", sa.Integer(), nullable=False),
        sa.Column("manifest", _JSON, nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_bulk_exports_program_id_programs")),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_bulk_exports")),
        sa.UniqueConstraint("id", name=op.f("uq_bulk_exports_id")),
    )
    with op.batch_alter_table("bulk_exports", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_bulk_exports_state_claimed_until"), ["state", "claimed_until"])
        batch_op.create_index(batch_op.f("ix_bulk_exports_expires_at"), ["expires_at"])


def downgrade() -> None:
    with op.batch_alter_table("bulk_exports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bulk_exports_expires_at"))
        batch_op.drop_index(batch_op.f("ix_bulk_exports_state_claimed_until"))
    op.drop_table("bulk_exports")
