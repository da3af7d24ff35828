"""Console accounts and seeded records for the browser tests, in the running gateway's database:
accounts made with ``peerlink users add`` (the password on standard input), records read through the
records' own repositories."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Awaitable, Callable
from typing import NamedTuple, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from mappings.ids import fhir_id
from service.cli.seed import DEMO_CODE, SANDBOX_HOSPITAL_KEY
from service.domain.care_team import CareTeamMember
from service.fhir.render import all_records
from service.records.programs import get_by_code
from service.store import Database
from service.store import kinds as k
from tests.e2e.gateway import PEERLINK, Gateway

PASSWORD = "browser tests pass phrase"
T = TypeVar("T")
__all__ = ["PASSWORD", "SANDBOX_HOSPITAL_KEY", "SeededParticipant", "add_user", "seeded"]


class SeededParticipant(NamedTuple):
    id: str
    fhir_id: str


def _on(gateway: Gateway, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    async def run() -> T:
        database = Database(gateway.env["PEERLINK_DATABASE_URL"])
        try:
            async with database.read() as conn:
                return await work(conn)
        finally:
            await database.dispose()

    return asyncio.run(run())


def add_user(gateway: Gateway, username: str, role: str, *, specialist: str | None = None) -> None:
    command = [PEERLINK, "users", "add", username, "--role", role, "--password-stdin"]
    command += ["--specialist", specialist] if specialist else []
    done = subprocess.run(command, env=gateway.env, input=PASSWORD + "\n", capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and f"console user {username} added" in done.stdout, done.stdout + done.stderr


def seeded(gateway: Gateway) -> tuple[str, SeededParticipant]:
    """A seeded peer specialist on a care team, and a participant of that care team."""

    async def work(conn: AsyncConnection) -> tuple[str, SeededParticipant]:
        program = await get_by_code(conn, DEMO_CODE)
        members: list[CareTeamMember] = await all_records(conn, k.CARE_TEAM_MEMBERS, program.id)
        member = next(m for m in members if m.specialist_id is not None)
        assert member.specialist_id is not None
        pid = fhir_id(program.identifier_system, "participant", member.participant_id)
        return member.specialist_id, SeededParticipant(member.participant_id, pid)

    return _on(gateway, work)
