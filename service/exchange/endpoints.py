"""What a worker keeps per EHR connection between deliveries: its SMART client (token, keep-alive),
its rate limit, and the programs the connections belong to."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx
from sqlalchemy.ext.asyncio import AsyncConnection

from service.domain import Program
from service.store import Database, RecordRepository
from service.store import kinds as k

from . import connections
from .connections import EhrConnection
from .smart_client import SmartClient


@dataclass
class RateLimit:
    per_second: int
    _next: float = 0.0

    async def wait(self, requests: int = 1) -> None:
        now = time.monotonic()
        start = max(now, self._next)
        self._next = start + requests / max(self.per_second, 1)
        if start > now:
            await asyncio.sleep(start - now)


class Endpoints:
    def __init__(self, database: Database, transport: httpx.AsyncBaseTransport | None) -> None:
        self._database = database
        self._transport = transport
        self.clients: dict[str, tuple[EhrConnection, SmartClient]] = {}
        self._limits: dict[str, RateLimit] = {}
        self._programs: dict[str, Program] = {}

    async def client(self, name: str) -> tuple[EhrConnection, SmartClient]:
        """The connection as it is now, with its client (kept while the connection's settings stay)."""
        async with self._database.read() as conn:
            connection = await connections.get(conn, name)
        cached = self.clients.get(name)
        if cached is not None and cached[0] == connection:  # same settings: keep the client (token, keep-alive)
            self.clients[name] = (connection, cached[1])  # with the current poll cursor
            return connection, cached[1]
        if cached is not None:
            await cached[1].aclose()
        client = SmartClient(connection, connection.private_key(), transport=self._transport)
        self.clients[name] = (connection, client)
        self._limits[name] = RateLimit(connection.rate_per_second)
        return connection, client

    async def wait_turn(self, name: str) -> None:
        """Keep to the connection's rate limit."""
        await self._limits[name].wait()

    async def program(self, conn: AsyncConnection, program_id: str) -> Program:
        if program_id not in self._programs:
            self._programs[program_id] = await RecordRepository(k.PROGRAMS).get(conn, None, program_id)
        return self._programs[program_id]

    async def aclose(self) -> None:
        for _, client in self.clients.values():
            await client.aclose()
