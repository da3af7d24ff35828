"""The change hub: a record change writes its FHIR projection and its outbox rows in the change's
transaction; a rolled-back change leaves neither."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from mappings import referral as referral_map
from mappings.context import MappingContext
from service.domain import ParticipantFields, Program, ReferralAction, ReferralFields, TransitionRequest
from service.records import changes, operations, outbox_rows
from service.records.types import PARTICIPANTS, REFERRALS
from service.store import Database
from service.store.tables import ehr_referrals, fhir_resources, outbox
from tests.exchange.support import add_connection
from tests.factories import participant_body, referral_body

CANCEL = TransitionRequest(by="clinic", reason="moved away")


class Boom(Exception):
    pass


async def task_version(conn: AsyncConnection, program: Program, referral_id: str) -> int | None:
    task_id = MappingContext(program).id_for(referral_map.TASK_KIND, referral_id)
    t = fhir_resources.c
    found = await conn.execute(select(t.version_id).where(t.resource_type == "Task", t.resource_id == task_id))
    return found.scalar()


async def queued(conn: AsyncConnection) -> list[tuple[str, str, str]]:
    rows = await conn.execute(select(outbox.c.connection, outbox.c.kind, outbox.c.record_id).order_by(outbox.c.pk))
    return [tuple(row) for row in rows]


async def referral_from(database: Database, program: Program, *, linked: bool = True) -> str:
    """A participant and a referral; ``linked``: it came from the connection ``hospital``."""
    async with database.transaction() as conn:
        participant = await operations.create(
            conn, program.id, PARTICIPANTS, ParticipantFields.model_validate(participant_body())
        )
        referral = await operations.create(
            conn, program.id, REFERRALS, ReferralFields.model_validate(referral_body(participant.id))
        )
        if linked:
            await conn.execute(
                insert(ehr_referrals).values(connection="hospital", referral_id=referral.id, task_id="ehr-task-1")
            )
    return str(referral.id)


@pytest.fixture
async def hospital(database: Database, program: Program, tmp_path: Path) -> None:
    await add_connection(database, program, tmp_path, push=["referral-status"])


async def test_a_change_writes_its_projection_and_outbox_row_together(database, program, hospital):
    referral_id = await referral_from(database, program)
    async with database.read() as conn:
        assert await task_version(conn, program, referral_id) == 1
        assert await queued(conn) == []  # the referral was not linked to the hospital when it was made
    async with database.transaction() as conn:
        await operations.transition_referral(
            conn, program.id, referral_id, ReferralAction.CANCEL, CANCEL, expected_version=None
        )
    async with database.read() as conn:
        assert await task_version(conn, program, referral_id) == 2
        assert await queued(conn) == [("hospital", "referral", referral_id)]


async def test_a_rolled_back_change_leaves_neither(database, program, hospital):
    referral_id = await referral_from(database, program)
    seen: list[Any] = []

    async def cancel_then_fail() -> None:
        async with database.transaction() as conn:
            await operations.transition_referral(
                conn, program.id, referral_id, ReferralAction.CANCEL, CANCEL, expected_version=None
            )
            seen.extend([await task_version(conn, program, referral_id), len(await queued(conn))])
            raise Boom

    with pytest.raises(Boom):
        await cancel_then_fail()
    assert seen == [2, 1]  # inside the transaction, both were there
    async with database.read() as conn:
        assert await task_version(conn, program, referral_id) == 1
        assert await queued(conn) == []


async def test_no_row_for_a_connection_the_record_does_not_go_to(database, program, hospital):
    referral_id = await referral_from(database, program, linked=False)
    async with database.transaction() as conn:
        await operations.transition_referral(
            conn, program.id, referral_id, ReferralAction.CANCEL, CANCEL, expected_version=None
        )
    async with database.read() as conn:
        assert await task_version(conn, program, referral_id) == 2  # projected all the same
        assert await queued(conn) == []


async def test_a_record_already_waiting_is_not_queued_twice(database, program, hospital):
    referral_id = await referral_from(database, program)
    now = datetime.now(UTC)
    async with database.transaction() as conn:
        referral: Any = await REFERRALS.repository.get(conn, program.id, referral_id)
        await changes.record_changed(conn, program.id, "referral", referral, now)
        await changes.record_changed(conn, program.id, "referral", referral, now)
        assert await outbox_rows.enqueue(conn, program, "referral", referral, now) == 0
    async with database.read() as conn:
        assert (await conn.execute(select(func.count()).select_from(outbox))).scalar() == 1


async def test_only_enabled_connections_that_push_the_kind_receive(database, program, tmp_path):
    await add_connection(database, program, tmp_path, push=["encounters"])
    async with database.read() as conn:
        (receiver,) = await outbox_rows.receivers(conn, program.id)
    assert receiver.pushes("encounter")
    assert not receiver.pushes("referral")
    referral_id = await referral_from(database, program)
    async with database.read() as conn:
        referral: Any = await REFERRALS.repository.get(conn, program.id, referral_id)
    async with database.transaction() as conn:
        assert await outbox_rows.enqueue(conn, program, "referral", referral, datetime.now(UTC)) == 0
