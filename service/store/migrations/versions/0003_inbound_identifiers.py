"""inbound identifiers

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 04:12:50.694810
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from service.store.types import UTCDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "external_identifiers",
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("program_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("system", sa.String(length=500), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_external_identifiers_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_external_identifiers")),
        sa.UniqueConstraint(
            "program_id", "kind", "system", "value", name=op.f("uq_external_identifiers_program_id_kind_system_value")
        ),
    )
    with op.batch_alter_table("external_identifiers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_external_identifiers_kind_record_id"), ["kind", "record_id"], unique=False)

    op.create_table(
        "review_flags",
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("program_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("resolved_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_review_flags_program_id_programs")),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_review_flags")),
    )
    with op.batch_alter_table("review_flags", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_review_flags_kind_record_id"), ["kind", "record_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_review_flags_program_id_resolved_at"), ["program_id", "resolved_at"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("review_flags", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_review_flags_program_id_resolved_at"))
        batch_op.drop_index(batch_op.f("ix_review_flags_kind_record_id"))

    op.drop_table("review_flags")
    with op.batch_alter_table("external_identifiers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_external_identifiers_kind_record_id"))

    op.drop_table("external_identifiers")
