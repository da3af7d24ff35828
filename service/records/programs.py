"""Programs (tenants): looked up by code, created by the CLI and the seed."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from service.domain import Program, ProgramFields
from service.domain.errors import Conflict, NotFound
from service.store import RecordRepository
from service.store import kinds as k
from service.store.tables import programs

from .changes import record_changed
from .operations import utcnow


async def find_by_code(conn: AsyncConnection, code: str) -> Program | None:
    row = (await conn.execute(select(programs.c.id).where(programs.c.code == code))).first()
    if row is None:
        return None
    return await RecordRepository(k.PROGRAMS).get(conn, None, row.id)


async def get_by_code(conn: AsyncConnection, code: str) -> Program:
    program = await find_by_code(conn, code)
    if program is None:
        raise NotFound("no program with that code on this gateway")
    return program


async def create_program(conn: AsyncConnection, fields: ProgramFields) -> Program:
    if await find_by_code(conn, fields.code) is not None:
        raise Conflict("a program with that code exists already")
    at = utcnow()
    program = await RecordRepository(k.PROGRAMS).insert(conn, None, fields, at)
    await record_changed(conn, program.id, "program", program, at)
    return program
