"""fhir projection

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 04:01:43.337572
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from service.store.types import UTCDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "fhir_resources",
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("program_id", sa.String(length=64), nullable=False),
        sa.Column("resource_type", sa.String(length=40), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("last_updated", UTCDateTime(), nullable=False),
        sa.Column("source_kind", sa.String(length=40), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_fhir_resources_program_id_programs")),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_fhir_resources")),
        sa.UniqueConstraint(
            "program_id",
            "resource_type",
            "resource_id",
            name=op.f("uq_fhir_resources_program_id_resource_type_resource_id"),
        ),
    )
    with op.batch_alter_table("fhir_resources", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_fhir_resources_program_id_resource_type_last_updated"),
            ["program_id", "resource_type", "last_updated"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_fhir_resources_source_kind_source_id"), ["source_kind", "source_id"], unique=False
        )

    op.create_table(
        "fhir_versions",
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("program_id", sa.String(length=64), nullable=False),
        sa.Column("resource_type", sa.String(length=40), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("last_updated", UTCDateTime(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_fhir_versions_program_id_programs")),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_fhir_versions")),
        sa.UniqueConstraint(
            "program_id",
            "resource_type",
            "resource_id",
            "version_id",
            name=op.f("uq_fhir_versions_program_id_resource_type_resource_id_version_id"),
        ),
    )
    with op.batch_alter_table("fhir_versions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_fhir_versions_program_id_resource_type_last_updated"),
            ["program_id", "resource_type", "last_updated"],
            unique=False,
        )

    op.create_table(
        "fhir_search",
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("resource_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("program_id", sa.String(length=64), nullable=False),
        sa.Column("resource_type", sa.String(length=40), nullable=False),
        sa.Column("param", sa.String(length=40), nullable=False),
        sa.Column("token", sa.String(length=300), nullable=True),
        sa.Column("moment", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["resource_pk"],
            ["fhir_resources.pk"],
            name=op.f("fk_fhir_search_resource_pk_fhir_resources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_fhir_search")),
    )
    with op.batch_alter_table("fhir_search", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_fhir_search_program_id_resource_type_param_moment"),
            ["program_id", "resource_type", "param", "moment"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_fhir_search_program_id_resource_type_param_token"),
            ["program_id", "resource_type", "param", "token"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_fhir_search_resource_pk"), ["resource_pk"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("fhir_search", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fhir_search_resource_pk"))
        batch_op.drop_index(batch_op.f("ix_fhir_search_program_id_resource_type_param_token"))
        batch_op.drop_index(batch_op.f("ix_fhir_search_program_id_resource_type_param_moment"))

    op.drop_table("fhir_search")
    with op.batch_alter_table("fhir_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fhir_versions_program_id_resource_type_last_updated"))

    op.drop_table("fhir_versions")
    with op.batch_alter_table("fhir_resources", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fhir_resources_source_kind_source_id"))
        batch_op.drop_index(batch_op.f("ix_fhir_resources_program_id_resource_type_last_updated"))

    op.drop_table("fhir_resources")
