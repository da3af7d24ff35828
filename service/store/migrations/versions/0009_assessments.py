"""outcome assessments

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 06:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from service.store.types import UTCDateTime

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "assessments",
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("program_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column(
            "data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("participant_id", sa.String(length=64), nullable=False),
        sa.Column("instrument", sa.String(length=64), nullable=False),
        sa.Column("completed_at", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("amends_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["amends_id"], ["assessments.id"], name=op.f("fk_assessments_amends_id_assessments")),
        sa.ForeignKeyConstraint(
            ["participant_id"], ["participants.id"], name=op.f("fk_assessments_participant_id_participants")
        ),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_assessments_program_id_programs")),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_assessments")),
        sa.UniqueConstraint("id", name=op.f("uq_assessments_id")),
    )
    with op.batch_alter_table("assessments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_assessments_amends_id"), ["amends_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_assessments_completed_at"), ["completed_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_assessments_instrument"), ["instrument"], unique=False)
        batch_op.create_index(batch_op.f("ix_assessments_participant_id"), ["participant_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_assessments_program_id"), ["program_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("assessments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_assessments_program_id"))
        batch_op.drop_index(batch_op.f("ix_assessments_participant_id"))
        batch_op.drop_index(batch_op.f("ix_assessments_instrument"))
        batch_op.drop_index(batch_op.f("ix_assessments_completed_at"))
        batch_op.drop_index(batch_op.f("ix_assessments_amends_id"))
    op.drop_table("assessments")
