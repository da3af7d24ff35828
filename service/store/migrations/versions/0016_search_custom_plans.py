"""PostgreSQL: plan every execution of a prepared statement for its own values (plan_cache_mode)

A FHIR search compiles to one SQL text whose parameters change everything: ``patient=`` names the few
index rows of one participant, ``category=clinical-note`` hundreds of thousands. The asyncpg driver
prepares each statement once per connection, and after five executions PostgreSQL may switch to a
generic plan, made without the values: at 1,000,000 resources (`tests/bench/bench_million.py`) the
generic plan of ``DocumentReference?patient=&category=clinical-note&date=ge`` scans the category's and
date's index rows, 1.6-1.8 s, where the plan for the values takes 5-10 ms. ``force_custom_plan`` on the
database makes every session plan for the values (a fraction of a millisecond of planning each time).
SQLite has no such setting: nothing to do there.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 12:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _set(value: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DO $$ BEGIN EXECUTE format('ALTER DATABASE %I " + value + "', current_database()); END $$")


def upgrade() -> None:
    _set("SET plan_cache_mode = force_custom_plan")


def downgrade() -> None:
    _set("RESET plan_cache_mode")
