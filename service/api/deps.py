"""Request dependencies shared by the routers: database, program (tenant), If-Match, media type."""

from __future__ import annotations

import re
import time
from typing import Annotated

from fastapi import Depends, Header, Request

from service.api.access import AccessDep
from service.domain import Program
from service.domain.errors import BadRequest, Forbidden, UnsupportedMediaType
from service.records.programs import get_by_code
from service.settings import Settings
from service.store import Database, RecordRepository
from service.store import kinds as k

_ETAG = re.compile(r'^(?:W/)?"(\d{1,9})"$')
PROGRAM_CACHE_SECONDS = 30.0  # a program's id never changes; its code is what requests name
JSON_TYPES = ("application/json", "application/merge-patch+json")


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


DatabaseDep = Annotated[Database, Depends(get_database)]


async def current_program(
    request: Request,
    database: DatabaseDep,
    access: AccessDep,
    program: Annotated[
        str | None,
        Header(
            alias="PeerLink-Program",
            description="Program code. With authentication the token's client decides; a different code is a 403.",
        ),
    ] = None,
) -> Program:
    key = access.program_id or program or get_settings(request).default_program
    cache: dict[str, tuple[float, Program]] = request.app.state.program_cache
    known = known_program(cache, key)
    if known is not None:
        found = known
    else:
        async with database.read() as conn:
            if access.program_id is not None:
                found = await RecordRepository(k.PROGRAMS).get(conn, None, access.program_id)
            else:
                found = await get_by_code(conn, key)
        cache[key] = (time.monotonic() + PROGRAM_CACHE_SECONDS, found)
    if program is not None and program != found.code:
        raise Forbidden("the token's client belongs to another program")
    return found


ProgramDep = Annotated[Program, Depends(current_program)]


def known_program(cache: dict[str, tuple[float, Program]], key: str) -> Program | None:
    """The program named ``key`` (the client's program id, else the header's or the default code) while
    the app's cache holds it (PROGRAM_CACHE_SECONDS); else None."""
    cached = cache.get(key)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    return None


async def if_match(
    value: Annotated[
        str | None, Header(alias="If-Match", description='Version the change is based on, e.g. W/"3".')
    ] = None,
) -> int | None:
    if value is None or value.strip() == "*":
        return None
    match = _ETAG.match(value.strip())
    if match is None:
        raise BadRequest('If-Match must be an ETag this server issued, such as W/"3"')
    return int(match.group(1))


IfMatchDep = Annotated[int | None, Depends(if_match)]


def etag(version: int) -> str:
    return f'W/"{version}"'


async def require_json(request: Request) -> None:
    """Bodies must be JSON: anything else is a 415, not a confusing validation error."""
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    has_body = request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers
    if not has_body:
        return
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in JSON_TYPES:
        raise UnsupportedMediaType("send the body as application/json")


async def refuse_body(request: Request) -> None:
    """Actions that take no input say so, rather than ignore what was sent (an empty object is fine)."""
    if (await request.body()).strip() not in (b"", b"{}"):
        raise BadRequest("this action takes no request body")
