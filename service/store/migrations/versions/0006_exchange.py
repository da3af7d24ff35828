"""exchange: EHR connections, the outbox, what each EHR holds, polled referrals

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 06:35:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from service.store.types import UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "ehr_connections",
        sa.Column("pk", PK, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("program_id", sa.String(length=64), nullable=False),
        sa.Column("base_url", sa.String(length=500), nullable=False),
        sa.Column("client_id", sa.String(length=200), nullable=False),
        sa.Column("key_file", sa.String(length=500), nullable=True),
        sa.Column("key_env", sa.String(length=100), nullable=True),
        sa.Column("kid", sa.String(length=200), nullable=True),
        sa.Column("alg", sa.String(length=10), nullable=False),
        sa.Column("scopes", sa.String(length=2000), nullable=False),
        sa.Column("profile", sa.String(length=20), nullable=False),
        sa.Column("organization", sa.String(length=300), nullable=False),
        sa.Column("push", sa.String(length=200), nullable=False),
        sa.Column("poll_referrals", sa.Boolean(), nullable=False),
        sa.Column("poll_seconds", sa.Integer(), nullable=False),
        sa.Column("rate_per_second", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("task_owner", sa.String(length=300), nullable=False),
        sa.Column("poll_cursor", sa.String(length=40), nullable=True),
        sa.Column("polled_at", UTCDateTime(), nullable=True),
        sa.Column("last_success_at", UTCDateTime(), nullable=True),
        sa.Column("token_failures", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_ehr_connections_program_id_programs")),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_ehr_connections")),
        sa.UniqueConstraint("name", name=op.f("uq_ehr_connections_name")),
    )
    op.create_table(
        "outbox",
        sa.Column("pk", PK, autoincrement=True, nullable=False),
        sa.Column("program_id", sa.String(length=64), nullable=False),
        sa.Column("connection", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("participant_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("claimed_by", sa.String(length=100), nullable=True),
        sa.Column("claimed_until", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_outbox_program_id_programs")),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_outbox")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_outbox_connection_participant_id_pk"), ["connection", "participant_id", "pk"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_outbox_state_next_attempt_at"), ["state", "next_attempt_at"], unique=False)
        batch_op.create_index(
            "uq_outbox_waiting",
            ["connection", "kind", "record_id"],
            unique=True,
            sqlite_where=sa.text("state = 'pending'"),
            postgresql_where=sa.text("state = 'pending'"),
        )
    op.create_table(
        "ehr_resources",
        sa.Column("pk", PK, autoincrement=True, nullable=False),
        sa.Column("connection", sa.String(length=100), nullable=False),
        sa.Column("resource_type", sa.String(length=40), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("ehr_id", sa.String(length=64), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("delivered_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_ehr_resources")),
        sa.UniqueConstraint(
            "connection",
            "resource_type",
            "resource_id",
            name=op.f("uq_ehr_resources_connection_resource_type_resource_id"),
        ),
    )
    op.create_table(
        "ehr_referrals",
        sa.Column("pk", PK, autoincrement=True, nullable=False),
        sa.Column("connection", sa.String(length=100), nullable=False),
        sa.Column("referral_id", sa.String(length=64), nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("task_version", sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_ehr_referrals")),
        sa.UniqueConstraint("connection", "task_id", name=op.f("uq_ehr_referrals_connection_task_id")),
    )
    with op.batch_alter_table("ehr_referrals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ehr_referrals_referral_id"), ["referral_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ehr_referrals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ehr_referrals_referral_id"))
    op.drop_table("ehr_referrals")
    op.drop_table("ehr_resources")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("uq_outbox_waiting")
        batch_op.drop_index(batch_op.f("ix_outbox_state_next_attempt_at"))
        batch_op.drop_index(batch_op.f("ix_outbox_connection_participant_id_pk"))
    op.drop_table("outbox")
    op.drop_table("ehr_connections")
