"""claims: 837P files, claim lines and X12 control counters

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 09:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from service.store.types import UTCDateTime

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "claim_counters",
        sa.Column("program_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=20), nullable=False),
        sa.Column("value", PK, nullable=False),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_claim_counters_program_id_programs")),
        sa.PrimaryKeyConstraint("program_id", "name", name=op.f("pk_claim_counters")),
    )
    op.create_table(
        "claim_files",
        sa.Column("pk", PK, autoincrement=True, nullable=False),
        sa.Column("program_id", sa.String(length=64), nullable=False),
        sa.Column("payer", sa.String(length=64), nullable=False),
        sa.Column("interchange", PK, nullable=False),
        sa.Column("group_control", PK, nullable=False),
        sa.Column("transaction_control", PK, nullable=False),
        sa.Column("claims", sa.Integer(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("ack_code", sa.String(length=2), nullable=True),
        sa.Column("ack_errors", JSON, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("acked_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_claim_files_program_id_programs")),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_claim_files")),
        sa.UniqueConstraint("program_id", "interchange", name=op.f("uq_claim_files_program_id_interchange")),
    )
    op.create_index(op.f("ix_claim_files_program_id"), "claim_files", ["program_id"], unique=False)
    op.create_table(
        "claim_lines",
        sa.Column("pk", PK, autoincrement=True, nullable=False),
        sa.Column("program_id", sa.String(length=64), nullable=False),
        sa.Column("file_pk", PK, nullable=False),
        sa.Column("claim_number", sa.String(length=38), nullable=False),
        sa.Column("line_control", sa.String(length=50), nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("participant_id", sa.String(length=64), nullable=False),
        sa.Column("payer", sa.String(length=64), nullable=False),
        sa.Column("service_date", sa.Date(), nullable=False),
        sa.Column("frequency", sa.String(length=1), nullable=False),
        sa.Column("replaces", sa.String(length=38), nullable=True),
        sa.Column("replaced_by", sa.String(length=38), nullable=True),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("charge", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("paid", sa.String(length=20), nullable=True),
        sa.Column("adjustments", JSON, nullable=False),
        sa.Column("payer_claim", sa.String(length=50), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["file_pk"], ["claim_files.pk"], name=op.f("fk_claim_lines_file_pk_claim_files")),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_claim_lines_program_id_programs")),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_claim_lines")),
        sa.UniqueConstraint("claim_number", name=op.f("uq_claim_lines_claim_number")),
        sa.UniqueConstraint("line_control", name=op.f("uq_claim_lines_line_control")),
    )
    op.create_index(op.f("ix_claim_lines_file_pk"), "claim_lines", ["file_pk"], unique=False)
    op.create_index(
        op.f("ix_claim_lines_program_id_session_id"), "claim_lines", ["program_id", "session_id"], unique=False
    )
    op.create_index(
        op.f("ix_claim_lines_program_id_service_date"), "claim_lines", ["program_id", "service_date"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_claim_lines_program_id_service_date"), table_name="claim_lines")
    op.drop_index(op.f("ix_claim_lines_program_id_session_id"), table_name="claim_lines")
    op.drop_index(op.f("ix_claim_lines_file_pk"), table_name="claim_lines")
    op.drop_table("claim_lines")
    op.drop_index(op.f("ix_claim_files_program_id"), table_name="claim_files")
    op.drop_table("claim_files")
    op.drop_table("claim_counters")
