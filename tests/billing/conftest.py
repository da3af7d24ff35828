"""A program with an NPI (a claim needs the billing provider's), and the payers dir of the tests."""

from __future__ import annotations

import pytest

from service.domain import Program, ProgramFields
from service.records.programs import create_program
from service.store import Database


@pytest.fixture
async def program(database: Database) -> Program:
    async with database.transaction() as conn:
        return await create_program(
            conn,
            ProgramFields(
                code="demo",
                name="Test Peer Program",
                identifier_system="https://peer.example.org/ids",
                npi="1234567893",
            ),
        )
