"""The integrator's screens of the EHR exchange: connections and their health, dead letters with the
EHR's reason and a replay, the conformance check of a connection. The numbers come from
service.exchange (the same functions as the admin API); only the program's own connections show."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from service.exchange import connections, outbox
from service.exchange.conformance import CheckOptions, run_checks
from service.exchange.health import connection_health
from service.store import Database

from .audit import console_audit
from .roles import TECHNICAL, Role
from .security import ConsoleRefused, CurrentUser, require_roles
from .web import add_nav, redirect, render

router = APIRouter(prefix="/integration")
Technical = Annotated[CurrentUser, require_roles(TECHNICAL)]
Operator = Annotated[CurrentUser, require_roles(Role.INTEGRATOR, Role.PROGRAM_ADMIN)]
SECTION = "Integration"
add_nav("EHR connections", "/console/integration/connections", TECHNICAL, SECTION)
add_nav("Dead letters", "/console/integration/deadletters", TECHNICAL, SECTION)


def _database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


def age(seconds: float) -> str:
    """A waiting time as people read it (0 s, 42 s, 5 min, 3 h 10 min, 2 d 4 h)."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min"
    if whole < 86_400:
        return f"{whole // 3600} h {whole % 3600 // 60} min"
    return f"{whole // 86_400} d {whole % 86_400 // 3600} h"


async def _program_connections(request: Request, user: CurrentUser) -> tuple[list[Any], dict[str, Any]]:
    async with _database(request).read() as conn:
        found = await connections.list_all(conn, user.program_id)
        health = await connection_health(conn, user.program_id, datetime.now(UTC))
    return found, health


async def _dead_letters(request: Request, user: CurrentUser, name: str | None) -> list[dict[str, Any]]:
    async with _database(request).read() as conn:
        mine = {c.name for c in await connections.list_all(conn, user.program_id)}
        letters = await outbox.dead_letters(conn, name)
    return [letter for letter in letters if letter["connection"] in mine]


@router.get("/connections")
async def connections_page(request: Request, user: Technical) -> Response:
    found, health = await _program_connections(request, user)
    rows = [{"connection": c, "health": health.get(c.name, {})} for c in found]
    return render(request, "integration/connections.html", {"title": "EHR connections", "rows": rows, "age": age})


async def _connection(request: Request, user: CurrentUser, name: str) -> Any:
    async with _database(request).read() as conn:
        found = await connections.find(conn, name)
    if found is None or found.program_id != user.program_id:
        raise ConsoleRefused(404, "no such EHR connection in this program")
    return found


@router.get("/connections/{name}")
async def connection_page(request: Request, name: str, user: Technical) -> Response:
    found = await _connection(request, user, name)
    _, health = await _program_connections(request, user)
    letters = await _dead_letters(request, user, name)
    context = {
        "title": f"EHR connection {found.name}",
        "connection": found,
        "settings": found.public(),
        "health": health.get(found.name, {}),
        "letters": letters,
        "age": age,
        "report": None,
    }
    return render(request, "integration/connection.html", context)


@router.get("/deadletters")
async def deadletters_page(request: Request, user: Technical, replayed: int | None = None) -> Response:
    letters = await _dead_letters(request, user, None)
    context = {"title": "Dead letters", "letters": letters, "replayed": replayed}
    return render(request, "integration/deadletters.html", context)


@router.post("/deadletters/replay")
async def replay(
    request: Request,
    user: Operator,
    ids: Annotated[list[int] | None, Form()] = None,
    connection: Annotated[str | None, Form(max_length=100)] = None,
) -> Response:
    """Queue dead letters again: the ids given, or every one of a connection (POST, CSRF-checked)."""
    if not ids and not connection:
        raise ConsoleRefused(400, "name the dead letters to replay, or a connection")
    if connection:
        await _connection(request, user, connection)
    mine = {letter["id"] for letter in await _dead_letters(request, user, connection)}
    wanted = [i for i in ids if i in mine] if ids else sorted(mine)
    if ids and len(wanted) != len(set(ids)):
        raise ConsoleRefused(404, "no such dead letter of this program's connections")
    count = 0
    if wanted:
        async with _database(request).transaction() as conn:
            count = await outbox.replay(conn, wanted, connection, datetime.now(UTC))
            detail = {"count": count, "ids": wanted, "connection": connection}
            await console_audit(conn, request, user, "deadletters-replay", action="U", detail=detail)
    return redirect(f"/console/integration/deadletters?replayed={count}")


@router.post("/connections/{name}/check")
async def conformance_check(request: Request, name: str, user: Operator) -> Response:
    """Run the conformance check against the connection's EHR with its own client and key; show the table."""
    found = await _connection(request, user, name)
    try:
        key = found.private_key()
    except connections.KeyUnavailable as error:
        raise ConsoleRefused(409, str(error)) from None
    # the scopes: all the EHR registered for the client, as `peerlink check` asks by default
    options = CheckOptions(ehr=found.base_url, client_id=found.client_id, key=key, alg=found.alg)
    report = await run_checks(options, request.app.state.outbound)
    await console_audit(
        _database(request), request, user, "conformance-check", action="E", detail={"connection": name, "ok": report.ok}
    )
    _, health = await _program_connections(request, user)
    context = {
        "title": f"EHR connection {found.name}",
        "connection": found,
        "settings": found.public(),
        "health": health.get(found.name, {}),
        "letters": await _dead_letters(request, user, name),
        "age": age,
        "report": report,
    }
    return render(request, "integration/connection.html", context)
