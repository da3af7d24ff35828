"""subscriptions (R5 Backport IG on R4) and their events

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 09:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from service.store.types import UTCDateTime

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "subscriptions",
        sa.Column("pk", _PK, autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("program_id", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=100), nullable=True),
        sa.Column("organization", sa.String(length=300), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("topic", sa.String(length=300), nullable=False),
        sa.Column("topic_key", sa.String(length=40), nullable=False),
        sa.Column("filters", _JSON, nullable=False),
        sa.Column("endpoint", sa.String(length=1000), nullable=False),
        sa.Column("headers", _JSON, nullable=False),
        sa.Column("content", sa.String(length=16), nullable=False),
        sa.Column("heartbeat_seconds", sa.Integer(), nullable=True),
        sa.Column("timeout_seconds", sa.Integer(), nullable=False),
        sa.Column("max_count", sa.Integer(), nullable=False),
        sa.Column("retry_hours", sa.Integer(), nullable=True),
        sa.Column("end_at", UTCDateTime(), nullable=True),
        sa.Column("resource", _JSON, nullable=False),
        sa.Column("events_count", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("last_sent_at", UTCDateTime(), nullable=True),
        sa.Column("claimed_by", sa.String(length=100), nullable=True),
        sa.Column("claimed_until", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_subscriptions_program_id_programs")),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_subscriptions")),
        sa.UniqueConstraint("id", name=op.f("uq_subscriptions_id")),
    )
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_subscriptions_program_id_status"), ["program_id", "status"])
    op.create_table(
        "subscription_events",
        sa.Column("pk", _PK, autoincrement=True, nullable=False),
        sa.Column("subscription_pk", _PK, nullable=False),
        sa.Column("event_number", sa.Integer(), nullable=False),
        sa.Column("resource_type", sa.String(length=40), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["subscription_pk"],
            ["subscriptions.pk"],
            name=op.f("fk_subscription_events_subscription_pk_subscriptions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_subscription_events")),
        sa.UniqueConstraint(
            "subscription_pk", "event_number", name=op.f("uq_subscription_events_subscription_pk_event_number")
        ),
        sa.UniqueConstraint(
            "subscription_pk",
            "resource_type",
            "resource_id",
            "version_id",
            name=op.f("uq_subscription_events_focus"),
        ),
    )
    with op.batch_alter_table("subscription_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_subscription_events_state_next_attempt_at"), ["state", "next_attempt_at"])


def downgrade() -> None:
    with op.batch_alter_table("subscription_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_subscription_events_state_next_attempt_at"))
    op.drop_table("subscription_events")
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_subscriptions_program_id_status"))
    op.drop_table("subscriptions")
