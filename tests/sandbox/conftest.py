from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from service.auth.keys import SigningKeys
from tests.sandbox.support import Harness, build


@pytest.fixture(scope="session")
def sandbox_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One signing key for every in-process sandbox of the run (key generation is the slow part)."""
    path = tmp_path_factory.mktemp("sandbox-keys")
    SigningKeys(path).ensure()
    return path


@pytest.fixture
async def make_sandbox(sandbox_keys: Path) -> AsyncIterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(**config: Any) -> Harness:
        harness = build(sandbox_keys, **config)
        made.append(harness)
        return harness

    yield make
    for harness in made:
        await harness.http.aclose()


@pytest.fixture
def ehr(make_sandbox: Callable[..., Harness]) -> Harness:
    """A conforming generic sandbox."""
    return make_sandbox()
