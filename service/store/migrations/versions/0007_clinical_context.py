"""clinical context: the resources a clinic sends beside its referral, kept as received

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 06:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from service.store.types import UTCDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "clinical_context",
        sa.Column("pk", PK, autoincrement=True, nullable=False),
        sa.Column("program_id", sa.String(length=64), nullable=False),
        sa.Column("referral_id", sa.String(length=64), nullable=False),
        sa.Column("resource_type", sa.String(length=40), nullable=False),
        sa.Column("clinic_key", sa.String(length=800), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_clinical_context_program_id_programs")),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_clinical_context")),
        sa.UniqueConstraint(
            "program_id",
            "referral_id",
            "resource_type",
            "clinic_key",
            name=op.f("uq_clinical_context_program_id_referral_id_resource_type_clinic_key"),
        ),
    )
    with op.batch_alter_table("clinical_context", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_clinical_context_program_id_referral_id"), ["program_id", "referral_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("clinical_context", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_clinical_context_program_id_referral_id"))
    op.drop_table("clinical_context")
