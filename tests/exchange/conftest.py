"""Fixtures shared by the exchange tests that deliver to the sandbox EHR in process."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from service.auth.backend_client import load_private_key, public_jwks
from service.auth.keys import SigningKeys
from service.sandbox import ClientRegistration
from tests.exchange.support import HOSPITAL_KEY, add_connection, private_key_file
from tests.sandbox.support import ROOT, Harness, build


@pytest.fixture(scope="session")
def sandbox_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sandbox's token-signing key, made once (RSA key generation is the slow part) and copied."""
    keys = tmp_path_factory.mktemp("sandbox-keys")
    SigningKeys(keys).ensure()
    return keys


@pytest.fixture
async def sandbox(tmp_path: Path, sandbox_keys: Path):
    keys = tmp_path / "sandbox-keys"
    shutil.copytree(sandbox_keys, keys)
    harness = build(keys)
    yield harness
    await harness.http.aclose()


@pytest.fixture
async def connected(sandbox: Harness, database, program, tmp_path: Path) -> Path:
    """The gateway is a client of the sandbox, and the connection ``hospital`` points at it."""
    key_file = private_key_file(tmp_path)
    jwks = public_jwks(load_private_key(key_file.read_bytes()))
    sandbox.sandbox.register_client(
        ClientRegistration.model_validate({"client_id": "peerlink", "scopes": "system/*.cruds", "jwks": jwks})
    )
    await add_connection(
        database, program, tmp_path, base_url=f"{ROOT}{sandbox.fhir}", organization=HOSPITAL_KEY, key_file=str(key_file)
    )
    return key_file
