"""Browser tests' plumbing: Debian's headless Chromium through Selenium, screenshots, axe-core.

Nothing is downloaded at test time: the driver is Debian's ``/usr/bin/chromedriver`` (so Selenium Manager
is never asked), the browser Debian's ``/usr/bin/chromium`` (``make browser`` installs both), and axe-core
is the copy vendored in ``vendor/`` (its README says which version).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
AXE_JS = Path(__file__).parent / "vendor" / "axe.min.js"
AXE_VERSION = "4.14.1"
AXE_SHA256 = "29348999450cdf2849a8e70b7912fc2da85a849da39c0d0d5394f51d4a9ed95c"
ARTIFACTS_ENV = "PEERLINK_TEST_ARTIFACTS"
"""Where screenshots and axe results go; default ``var/test-artifacts`` in the checkout."""
BLOCKING_IMPACTS = frozenset({"serious", "critical"})

# Without the background-networking flags Chromium keeps calling home (updates, sync, safe browsing) on a
# machine whose only network is loopback.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--no-first-run",
    "--no-default-browser-check",
    "--no-proxy-server",
    "--window-size=1280,960",
)


def artifacts_dir() -> Path:
    root = os.environ.get(ARTIFACTS_ENV) or str(Path(__file__).resolve().parents[2] / "var" / "test-artifacts")
    return Path(root)


def screenshots_dir() -> Path:
    path = artifacts_dir() / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


def chromium_options(user_data_dir: Path) -> webdriver.ChromeOptions:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={user_data_dir}")
    return options


def start_chromium(user_data_dir: Path) -> webdriver.Chrome:
    """A headless Chromium with a fresh profile (no cookies, no cache), driven by Debian's chromedriver."""
    for program in (CHROMIUM, CHROMEDRIVER):
        assert os.access(program, os.X_OK), f"{program} is missing: `make browser` installs it"
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager: never fetch a driver or a browser
    driver = webdriver.Chrome(options=chromium_options(user_data_dir), service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(60)
    return driver


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")[:120] or "page"


def save_screenshot(driver: webdriver.Chrome, name: str) -> Path:
    """The page as a PNG in the artifacts folder; returns its path."""
    path = screenshots_dir() / f"{safe_name(name)}.png"
    assert driver.save_screenshot(str(path)), f"no screenshot written for {name}"
    return path


def axe_source() -> str:
    source = AXE_JS.read_bytes()
    assert hashlib.sha256(source).hexdigest() == AXE_SHA256, "tests/browser/vendor/axe.min.js changed"
    return source.decode("utf-8")


_RUN_AXE = """
const done = arguments[arguments.length - 1];
axe.run(document, {resultTypes: ['violations']})
  .then(results => done(JSON.stringify(results)))
  .catch(error => done(JSON.stringify({error: String(error)})));
"""


def axe_results(driver: webdriver.Chrome) -> dict[str, Any]:
    """Inject axe-core into the current page and run it on the whole document (the WCAG rules it has)."""
    driver.execute_script(axe_source())
    raw = driver.execute_async_script(_RUN_AXE)
    results: dict[str, Any] = json.loads(raw)
    assert "error" not in results, results.get("error")
    assert results["testEngine"]["version"] == AXE_VERSION
    return results


def blocking(violations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [v for v in violations if v.get("impact") in BLOCKING_IMPACTS]


def describe(violations: list[dict[str, Any]]) -> str:
    lines = []
    for violation in violations:
        targets = [node.get("target") for node in violation.get("nodes", [])][:5]
        lines.append(f"{violation['impact']}: {violation['id']} ({violation['help']}) at {targets}")
    return "\n".join(lines)


def check_accessibility(driver: webdriver.Chrome, name: str) -> list[dict[str, Any]]:
    """Run axe on the page, keep its full result as ``axe/<name>.json``, fail on a serious or critical
    violation; returns all violations (minor and moderate ones included) for a test to look at."""
    results = axe_results(driver)
    folder = artifacts_dir() / "axe"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{safe_name(name)}.json").write_text(json.dumps(results, indent=1))
    violations: list[dict[str, Any]] = results["violations"]
    found = blocking(violations)
    assert not found, f"axe found serious or critical violations on {name}:\n{describe(found)}"
    return violations
