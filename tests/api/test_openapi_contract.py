"""The OpenAPI document is the contract: Schemathesis generates requests for every operation (valid and
invalid ones), sends them to the app in process with a real token, and every answer must be
neither a server error nor anything the document does not declare (status, media type, schema)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service.app import create_app
from service.domain import ProgramFields
from service.records.programs import create_program
from service.settings import Settings
from service.store import Database
from service.store.migrate import upgrade
from tests.auth_support import FULL_SCOPES
from tests.conftest import BASE_URL, token_headers

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 10  # per operation and generation mode (valid and invalid): 20 requests an operation
EXCLUDED = {
    # Replaces the gateway's token-signing key (an RSA key generation per example, and every token
    # issued so far is then signed by a retired key); tests/api/test_auth_* cover its answers.
    "admin_rotate_keys",
}


def _no_network(request: httpx.Request) -> httpx.Response:
    """The gateway's own outbound calls (client JWKS URLs, EHR polls) never leave the process."""
    return httpx.Response(503)


async def _headers(settings_: Settings) -> dict[str, str]:
    """A program and a full-scope client, and the Authorization header of a token from /auth/token."""
    database = Database(settings_.database_url)
    try:
        async with database.transaction() as conn:
            program = await create_program(
                conn, ProgramFields(code="demo", name="Contract", identifier_system="https://peer.example.org/ids")
            )
        app = create_app(settings_, database)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
            return await token_headers(http, database, program, "contract-fuzzer", FULL_SCOPES)
    finally:
        await database.dispose()


@pytest.fixture(scope="module")
def contract(tmp_path_factory: pytest.TempPathFactory, keys_dir: Path) -> tuple[Any, dict[str, str]]:
    path = tmp_path_factory.mktemp("contract") / "peerlink.db"
    url = f"sqlite+aiosqlite:///{path}"
    upgrade(url)
    settings_ = Settings(
        database_url=url, max_body_bytes=64_000, public_url=BASE_URL, keys_dir=keys_dir, worker_in_process=False
    )
    headers = asyncio.run(_headers(settings_))
    app = create_app(settings_, outbound=httpx.MockTransport(_no_network))
    return schemathesis.openapi.from_asgi("/openapi.json", app), headers


@dataclass
class Tally:
    operations: int = 0
    sent: int = 0
    failing: int = 0
    failures: dict[str, str] = field(default_factory=dict)  # the first failure of each operation and mode


def _fuzz(operation: Any, mode: GenerationMode, headers: dict[str, str], tally: Tally) -> None:
    where = f"{operation.label} [{mode.value}]"

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def exercise(case: Any) -> None:
        tally.sent += 1
        try:  # an exception out of the app is a server error too
            case.validate_response(case.call(base_url=BASE_URL, headers=headers), checks=CHECKS)
        except (Exception, BaseExceptionGroup) as error:  # counted, and every operation still runs
            tally.failing += 1
            tally.failures.setdefault(where, str(error).strip()[:700])

    try:
        exercise()
    except Unsatisfiable:  # an operation without inputs has no invalid request to send
        assert mode is GenerationMode.NEGATIVE


def test_every_answer_is_declared_by_the_openapi_document(contract: tuple[Any, dict[str, str]]) -> None:
    schema, headers = contract
    tally = Tally()
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.definition.raw.get("operationId") in EXCLUDED:
            continue
        tally.operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz(operation, mode, headers, tally)
    print(f"schemathesis: {tally.operations} operations, {tally.sent} requests, {tally.failing} failing answers")
    assert tally.operations >= 70
    assert not tally.failures, "\n\n".join(f"{where}: {why}" for where, why in tally.failures.items())


async def test_a_replay_id_beyond_bigint_is_refused_not_a_server_error(client: httpx.AsyncClient) -> None:
    """Found by the fuzzing above: an id over 2**63 - 1 reached the database and came back as a 500."""
    response = await client.post("/admin/v1/deadletters/replay", json={"ids": [2**63, 1]})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert (await client.post("/admin/v1/deadletters/replay", json={"ids": [2**63 - 1]})).json() == {"queued": 0}
