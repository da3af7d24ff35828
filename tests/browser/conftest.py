"""Fixtures of the browser tests: a real gateway process, a headless Chromium, screenshots, axe-core.

- ``gateway`` (per module): the gateway serving on a free loopback port over a fresh SQLite file, migrated
  and seeded (tests/e2e/gateway.py); ``.base`` is its URL, ``.env`` the environment for ``peerlink``
  commands against the same database (e.g. ``subprocess.run([PEERLINK, "users", "add", ...], env=gateway.env)``),
  ``.log`` its log file, ``.headers()`` a bearer token of the seeded demo client.
- ``browser`` (per test): a headless Chromium with a fresh profile (no cookies), closed after the test.
- ``screenshot(name)``: the browser's page as ``<artifacts>/screenshots/<test>-<name>.png``; returns the path.
- ``accessible(name)``: axe-core on the browser's page; fails on a serious or critical violation.

Artifacts go to ``var/test-artifacts/`` or wherever ``PEERLINK_TEST_ARTIFACTS`` points.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver

from tests.browser import support
from tests.e2e.gateway import Gateway, running_gateway


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with running_gateway(tmp_path_factory.mktemp("browser-gateway")) as running:
        yield running


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    driver = support.start_chromium(tmp_path / "chromium-profile")
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def screenshot(browser: webdriver.Chrome, request: pytest.FixtureRequest) -> Callable[[str], Path]:
    def take(name: str) -> Path:
        return support.save_screenshot(browser, f"{request.node.name}-{name}")

    return take


@pytest.fixture
def accessible(browser: webdriver.Chrome, request: pytest.FixtureRequest) -> Callable[[str], list[dict[str, Any]]]:
    def check(name: str) -> list[dict[str, Any]]:
        return support.check_accessibility(browser, f"{request.node.name}-{name}")

    return check
