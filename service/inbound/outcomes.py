"""What an inbound interaction leaves in the store, and the transaction it runs in."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from service.domain.errors import Conflict, Forbidden, NotFound
from service.fhir import repository
from service.fhir.repository import StoredResource
from service.store import Database

from .errors import IdentifierClash

T = TypeVar("T")

ATTEMPTS = 3


@dataclass(frozen=True)
class Outcome:
    """What one interaction left in the store: the resource to answer with, and whether it is new."""

    resource_type: str
    resource_id: str
    created: bool


@dataclass(frozen=True)
class Written:
    """An outcome with the stored resource it left (the bytes to answer with, its version, its Patient)."""

    outcome: Outcome
    stored: StoredResource


@dataclass(frozen=True)
class TransactionOutcome:
    """Every entry of a transaction Bundle, in the order sent."""

    entries: tuple[Written, ...]

    @property
    def patients(self) -> list[str | None]:
        """The Patient each entry's resource is about (for the audit record)."""
        return [entry.stored.patient_id for entry in self.entries]

    @property
    def references(self) -> list[str]:
        return [f"{e.stored.resource_type}/{e.stored.resource_id}" for e in self.entries]


async def written(
    conn: AsyncConnection, program_id: str, outcome: Outcome, organization: str | None = None
) -> StoredResource:
    """The stored resource an interaction left; a sender may only write what it may then read."""
    try:
        return await repository.current(conn, program_id, outcome.resource_type, outcome.resource_id, organization)
    except NotFound:
        if organization is None:
            raise
        raise Forbidden(
            f"the {outcome.resource_type} written lies outside this client's data boundary "
            "(a referral must name the client's organisation as its requester)"
        ) from None


async def run(database: Database, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """``work`` in one transaction; when a concurrent delivery claimed the same identifier first the
    transaction is rolled back and the work runs again (it then finds what the other one stored)."""
    attempt = 1
    while True:
        try:
            async with database.transaction() as conn:
                return await work(conn)
        except IdentifierClash:
            if attempt == ATTEMPTS:
                raise Conflict("a concurrent request stored the same identifiers; send it again") from None
            attempt += 1
