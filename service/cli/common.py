"""Helpers every `peerlink` command group shares: failing with a message, running async work against
the database, resolving a program code, loading settings with logging configured."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import typer

from service.settings import Settings, get_settings

T = TypeVar("T")


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print the message on stderr; the caller raises the returned exit (code 2: bad usage)."""
    typer.echo(message, err=True)
    return typer.Exit(code)


def configured_settings() -> Settings:
    """The settings, with logging configured from them."""
    from service.logs import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    return settings


def with_open_database(settings: Settings, work: Callable[[Any], Awaitable[T]], prefix: str = "peerlink") -> T:
    """Run work(database) on a Database opened for it (and disposed after); a PeerLinkError exits
    with its detail."""
    from service.domain.errors import PeerLinkError
    from service.store import Database

    async def run() -> T:
        database = Database(settings.database_url)
        try:
            return await work(database)
        finally:
            await database.dispose()

    try:
        return asyncio.run(run())
    except PeerLinkError as error:
        raise fail(f"{prefix}: {error.detail}") from None


def with_database(settings: Settings, work: Callable[[Any], Awaitable[T]]) -> T:
    """Run work(conn) in one transaction; a PeerLinkError exits with its detail."""

    async def in_transaction(database: Any) -> T:
        async with database.transaction() as conn:
            return await work(conn)

    return with_open_database(settings, in_transaction)


async def find_program_id(conn: Any, code: str) -> str:
    """The id of the program with this code (NotFound otherwise)."""
    from service.records.programs import get_by_code

    program = await get_by_code(conn, code)
    return program.id
