"""audit chain

The audit log becomes a hash chain (seq, prev_hash, hash; seq replaces pk as the primary key), with
its search index (audit_entities) and archive anchors (audit_anchors). Records already written are
chained in pk order. On PostgreSQL, peerlink_audit_append() appends a batch in one statement, and a
trigger makes the three tables append-only: UPDATE is always
refused; DELETE (and TRUNCATE) only when the transaction set peerlink.audit_archive = on, which the
archiver (service/audit/archive.py) does after writing the archive file and its anchor.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 06:29:38.898645
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from service.store.migrations.audit_chain_0005 import CHAIN_LOCK, GENESIS, entities_of, record_hash
from service.store.types import UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
AUDIT_TABLES = ("audit_log", "audit_entities", "audit_anchors")
APPEND_SIGNATURE = (
    ("bytea[]",) * 3 + ("timestamptz[]",) + ("varchar[]",) * 8 + ("text[]", "varchar[]", "varchar[]", "int[]")
)

APPEND_ONLY = """
CREATE OR REPLACE FUNCTION peerlink_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'TRUNCATE') AND current_setting('peerlink.audit_archive', true) = 'on' THEN
        IF TG_OP = 'DELETE' THEN
            RETURN OLD;
        END IF;
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'the audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING HINT = 'only the archiver deletes, with SET LOCAL peerlink.audit_archive = on';
END
$$
"""


# The PostgreSQL writer's batch in one statement (service/audit/postgres_sink.py): under the chain
# lock, the tail (newest record, else newest anchor, else genesis), then each record's hash: SHA-256
# of its canonical form, joined from the parts the writer made around prev_hash and seq
# (service.audit.chain.canonical_parts), exactly the bytes of the canonical form (audit_chain_0005).
APPEND = """
CREATE OR REPLACE FUNCTION peerlink_audit_append(
    heads bytea[], middles bytea[], tails bytea[], recorded timestamptz[], program_ids varchar[],
    types varchar[], subtypes varchar[], actions varchar[], outcomes varchar[], client_ids varchar[],
    organizations varchar[], addresses varchar[], details text[],
    entity_kinds varchar[], entity_refs varchar[], entity_positions int[]
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_seq bigint;
    v_hash varchar;
    seqs bigint[] := '{}';
    prevs varchar[] := '{}';
    hashes varchar[] := '{}';
BEGIN
    PERFORM pg_advisory_xact_lock(__LOCK__);
    SELECT l.seq, l.hash INTO v_seq, v_hash FROM audit_log l ORDER BY l.seq DESC LIMIT 1;
    IF NOT FOUND THEN
        SELECT a.last_seq, a.hash INTO v_seq, v_hash FROM audit_anchors a ORDER BY a.last_seq DESC LIMIT 1;
        IF NOT FOUND THEN
            v_seq := 0;
            v_hash := '__GENESIS__';
        END IF;
    END IF;
    FOR i IN 1 .. coalesce(array_length(heads, 1), 0) LOOP
        v_seq := v_seq + 1;
        seqs := seqs || v_seq;
        prevs := prevs || v_hash;
        v_hash := encode(sha256(
            heads[i] || convert_to('"prev_hash":"' || v_hash || '",', 'UTF8') || middles[i]
            || convert_to('"seq":' || v_seq || ',', 'UTF8') || tails[i]
        ), 'hex');
        hashes := hashes || v_hash;
    END LOOP;
    INSERT INTO audit_log (seq, recorded, program_id, type, subtype, action, outcome, client_id, organization,
                           address, detail, prev_hash, hash)
    SELECT s, r, p, t, st, a, o, c, org, addr, d::jsonb, ph, h
    FROM unnest(seqs, recorded, program_ids, types, subtypes, actions, outcomes, client_ids, organizations,
                addresses, details, prevs, hashes) AS x(s, r, p, t, st, a, o, c, org, addr, d, ph, h);
    INSERT INTO audit_entities (kind, ref, seq)
    SELECT k, f, seqs[pos] FROM unnest(entity_kinds, entity_refs, entity_positions) AS e(k, f, pos);
    RETURN v_seq;
END
$$
""".replace("__LOCK__", str(CHAIN_LOCK)).replace("__GENESIS__", GENESIS)


def _chain_existing_records() -> None:
    """Chain the records written before this revision, in pk order, and index them."""
    bind = op.get_bind()
    log = sa.table(
        "audit_log",
        sa.column("pk", PK),
        sa.column("seq", PK),
        sa.column("recorded", UTCDateTime()),
        sa.column("program_id", sa.String()),
        sa.column("type", sa.String()),
        sa.column("subtype", sa.String()),
        sa.column("action", sa.String()),
        sa.column("outcome", sa.String()),
        sa.column("client_id", sa.String()),
        sa.column("organization", sa.String()),
        sa.column("address", sa.String()),
        sa.column("detail", JSON),
        sa.column("prev_hash", sa.String()),
        sa.column("hash", sa.String()),
    )
    prev = GENESIS
    updates: list[dict[str, object]] = []
    for seq, row in enumerate(bind.execute(sa.select(log).order_by(log.c.pk)).mappings(), start=1):
        chained = {**row, "seq": seq, "prev_hash": prev}
        prev = record_hash(chained)
        updates.append({"key": row["pk"], "seq": seq, "prev_hash": chained["prev_hash"], "hash": prev})
    if updates:
        bind.execute(
            log.update()
            .where(log.c.pk == sa.bindparam("key"))
            .values(seq=sa.bindparam("seq"), prev_hash=sa.bindparam("prev_hash"), hash=sa.bindparam("hash")),
            updates,
        )


def _index_existing_records() -> None:
    bind = op.get_bind()
    log = sa.table("audit_log", sa.column("seq", PK), sa.column("subtype", sa.String()), sa.column("detail", JSON))
    entities = sa.table(
        "audit_entities", sa.column("seq", PK), sa.column("kind", sa.String()), sa.column("ref", sa.String())
    )
    rows = [
        {"seq": seq, "kind": kind, "ref": ref}
        for seq, subtype, detail in bind.execute(sa.select(log.c.seq, log.c.subtype, log.c.detail).order_by(log.c.seq))
        for kind, ref in entities_of(detail or {}, subtype)
    ]
    if rows:
        bind.execute(entities.insert(), rows)


def upgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seq", PK, autoincrement=False, nullable=True))
        batch_op.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("hash", sa.String(length=64), nullable=True))

    _chain_existing_records()

    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_constraint("pk_audit_log", type_="primary")
        batch_op.drop_column("pk")
        batch_op.alter_column("seq", existing_type=PK, nullable=False)
        batch_op.alter_column("prev_hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_primary_key("pk_audit_log", ["seq"])

    op.create_table(
        "audit_entities",
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("ref", sa.String(length=200), nullable=False),
        sa.Column("seq", PK, autoincrement=False, nullable=False),
        sa.ForeignKeyConstraint(["seq"], ["audit_log.seq"], name=op.f("fk_audit_entities_seq_audit_log")),
        sa.PrimaryKeyConstraint("kind", "ref", "seq", name=op.f("pk_audit_entities")),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("audit_entities", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_entities_seq"), ["seq"], unique=False)

    _index_existing_records()

    op.create_table(
        "audit_anchors",
        sa.Column("pk", PK, autoincrement=True, nullable=False),
        sa.Column("first_seq", PK, nullable=False),
        sa.Column("last_seq", PK, nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("recorded_from", UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_to", UTCDateTime(timezone=True), nullable=False),
        sa.Column("file", sa.String(length=500), nullable=False),
        sa.Column("file_sha256", sa.String(length=64), nullable=False),
        sa.Column("archived_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_audit_anchors")),
        sa.UniqueConstraint("last_seq", name=op.f("uq_audit_anchors_last_seq")),
    )

    if op.get_bind().dialect.name == "postgresql":
        op.execute(APPEND)
        op.execute(APPEND_ONLY)
        for table in AUDIT_TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION peerlink_audit_append_only()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION peerlink_audit_append_only()"
            )


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        for table in AUDIT_TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        op.execute("DROP FUNCTION IF EXISTS peerlink_audit_append_only()")
        op.execute("DROP FUNCTION IF EXISTS peerlink_audit_append(" + ", ".join(APPEND_SIGNATURE) + ")")

    op.drop_table("audit_anchors")
    with op.batch_alter_table("audit_entities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_entities_seq"))

    op.drop_table("audit_entities")
    if postgres:
        op.execute("ALTER TABLE audit_log DROP CONSTRAINT pk_audit_log")
        op.execute("ALTER TABLE audit_log ADD COLUMN pk BIGSERIAL")
        op.execute("UPDATE audit_log SET pk = seq")
        op.execute(
            "SELECT setval(pg_get_serial_sequence('audit_log', 'pk'), coalesce(max(pk), 0) + 1, false) FROM audit_log"
        )
        op.execute("ALTER TABLE audit_log ADD CONSTRAINT pk_audit_log PRIMARY KEY (pk)")
        with op.batch_alter_table("audit_log", schema=None) as batch_op:
            batch_op.drop_column("hash")
            batch_op.drop_column("prev_hash")
            batch_op.drop_column("seq")
        return
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pk", PK, nullable=True))
    op.execute("UPDATE audit_log SET pk = seq")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_constraint("pk_audit_log", type_="primary")
        batch_op.drop_column("hash")
        batch_op.drop_column("prev_hash")
        batch_op.drop_column("seq")
        batch_op.alter_column("pk", existing_type=PK, nullable=False)
        batch_op.create_primary_key("pk_audit_log", ["pk"])
