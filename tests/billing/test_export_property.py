"""Property: whatever the sessions and however often a program exports (over overlapping periods, with
a coverage corrected in between), every file validates with pyx12, no claim passes a cap or the
prior-authorization threshold, and no session is billed twice: a session has one current claim, and
goes out again only as a replacement (frequency 7) naming the claim it replaces."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from mappings.x12.validate import validate
from service.domain.billing.periods import window_start
from service.domain.billing.rules import Period
from service.domain.errors import BadRequest
from service.records import claims, coverages
from service.store import Database
from service.store.tables import claim_lines
from tests.billing.claim_support import billable, books, session

START = date(2026, 1, 5)

sessions = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=200),  # day
        st.integers(min_value=8, max_value=18),  # hour
        st.integers(min_value=5, max_value=5 * 60),  # minutes
        st.booleans(),  # note signed
    ),
    min_size=1,
    max_size=25,
)
exports = st.lists(
    st.tuples(st.integers(min_value=0, max_value=200), st.integers(min_value=0, max_value=200), st.booleans()),
    min_size=1,
    max_size=4,
)


async def _run(url: str, payer: str, drawn: list[Any], plan: list[Any]) -> None:
    database = Database(url)
    registry = billable()
    rules = registry.get(payer)
    try:
        async with database.transaction() as conn:
            found = await books(conn, payer)
            for offset, hour, minutes, signed in drawn:
                await session(conn, found, START + timedelta(days=offset), hour, minutes, signed)
        program = found["program"]
        member = 0
        for a, length, correct in plan:
            if correct:  # the member id was wrong: every billed claim of the participant is replaced
                member += 1
                async with database.transaction() as conn:
                    await coverages.update(
                        conn, program.id, found["coverage"].id, {"member_id": f"M{200 + member}"}, registry,
                        expected_version=None,
                    )  # fmt: skip
            first = START + timedelta(days=a)
            refused: BadRequest | None = None
            try:
                async with database.transaction() as conn:
                    export = await claims.export(conn, program, registry, payer, first, first + timedelta(days=length))
            except BadRequest as error:
                refused = error
            if refused is not None:
                assert "nothing to bill" in str(refused.detail)
                continue
            assert validate(export.text) == []
            assert len(set(export.sessions)) == len(export.sessions)
            for claim in export.claims:
                assert (claim.frequency == "7") == (claim.original_claim is not None)
        async with database.read() as conn:
            rows = (await conn.execute(select(claim_lines))).mappings().all()
    finally:
        await database.dispose()
    current = [r for r in rows if r["replaced_by"] is None]
    per_session: dict[str, int] = defaultdict(int)
    for row in current:
        per_session[row["session_id"]] += 1
    assert all(n == 1 for n in per_session.values())
    numbers = {r["claim_number"]: r for r in rows}
    for row in rows:
        if row["replaces"] is not None:
            before = numbers[row["replaces"]]
            assert before["session_id"] == row["session_id"] and before["replaced_by"] == row["claim_number"]
    limits: list[tuple[Period, int]] = [(cap, cap.units) for cap in rules.caps]
    if rules.prior_authorization is not None:
        limits.append((rules.prior_authorization, rules.prior_authorization.after_units))
    for period, most in limits:
        for row in current:
            since = window_start(period, row["service_date"])
            used = sum(o["units"] for o in current if since <= o["service_date"] <= row["service_date"])
            assert used <= most, (period, row["service_date"], used)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payer=st.sampled_from(["tx-medicaid", "nj-medicaid-sud", "nc-medicaid"]), drawn=sessions, plan=exports)
def test_exports_never_pass_a_cap_nor_bill_a_session_twice(sqlite_template, payer, drawn, plan):
    folder = Path(tempfile.mkdtemp(prefix="claims-"))
    try:
        shutil.copy(sqlite_template, folder / "db.sqlite")
        asyncio.run(_run(f"sqlite+aiosqlite:///{folder / 'db.sqlite'}", payer, drawn, plan))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
