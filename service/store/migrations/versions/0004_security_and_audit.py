"""security and audit

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 06:02:27.451387
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from service.store.types import UTCDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("recorded", UTCDateTime(), nullable=False),
        sa.Column("program_id", sa.String(length=64), nullable=True),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("subtype", sa.String(length=40), nullable=False),
        sa.Column("action", sa.String(length=1), nullable=False),
        sa.Column("outcome", sa.String(length=2), nullable=False),
        sa.Column("client_id", sa.String(length=100), nullable=True),
        sa.Column("organization", sa.String(length=300), nullable=True),
        sa.Column("address", sa.String(length=100), nullable=True),
        sa.Column(
            "detail", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_client_id_recorded"), ["client_id", "recorded"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_log_recorded"), ["recorded"], unique=False)

    op.create_table(
        "auth_assertions",
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("client_id", sa.String(length=100), nullable=False),
        sa.Column("jti", sa.String(length=255), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_auth_assertions")),
        sa.UniqueConstraint("client_id", "jti", name=op.f("uq_auth_assertions_client_id_jti")),
    )
    with op.batch_alter_table("auth_assertions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_auth_assertions_expires_at"), ["expires_at"], unique=False)

    op.create_table(
        "access_grants",
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("program_id", sa.String(length=64), nullable=False),
        sa.Column("organization", sa.String(length=300), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("resource_type", sa.String(length=40), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=True),
        sa.Column("starts", sa.Date(), nullable=True),
        sa.Column("ends", sa.Date(), nullable=True),
        sa.Column("origin_kind", sa.String(length=40), nullable=False),
        sa.Column("origin_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_access_grants_program_id_programs")),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_access_grants")),
    )
    with op.batch_alter_table("access_grants", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_access_grants_origin_kind_origin_id"), ["origin_kind", "origin_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_access_grants_program_id_organization_patient_id_resource_type"),
            ["program_id", "organization", "patient_id", "resource_type"],
            unique=False,
        )

    op.create_table(
        "auth_clients",
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("client_id", sa.String(length=100), nullable=False),
        sa.Column("program_id", sa.String(length=64), nullable=False),
        sa.Column("organization", sa.String(length=300), nullable=True),
        sa.Column("scopes", sa.String(length=2000), nullable=False),
        sa.Column("jwks", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True),
        sa.Column("jwks_url", sa.String(length=500), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_auth_clients_program_id_programs")),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_auth_clients")),
        sa.UniqueConstraint("client_id", name=op.f("uq_auth_clients_client_id")),
    )
    with op.batch_alter_table("fhir_resources", schema=None) as batch_op:
        batch_op.add_column(sa.Column("patient_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("fhir_resources", schema=None) as batch_op:
        batch_op.drop_column("patient_id")

    op.drop_table("auth_clients")
    with op.batch_alter_table("access_grants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_access_grants_program_id_organization_patient_id_resource_type"))
        batch_op.drop_index(batch_op.f("ix_access_grants_origin_kind_origin_id"))

    op.drop_table("access_grants")
    with op.batch_alter_table("auth_assertions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_auth_assertions_expires_at"))

    op.drop_table("auth_assertions")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_recorded"))
        batch_op.drop_index(batch_op.f("ix_audit_log_client_id_recorded"))

    op.drop_table("audit_log")
