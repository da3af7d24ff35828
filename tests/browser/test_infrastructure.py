"""The browser tests' own plumbing, proved on a page the gateway serves today: the program outcome report
(``/peer/v1/reports/outcomes?format=html``) of the seeded demo program, opened in headless Chromium with the
demo client's bearer token, screenshotted and checked with axe-core."""

from __future__ import annotations

import hashlib
import json

import pytest
from PIL import Image
from selenium import webdriver
from selenium.webdriver.common.by import By

from tests.browser import support
from tests.e2e.gateway import Gateway

pytestmark = pytest.mark.e2e


def test_the_vendored_axe_core_is_the_published_file():
    assert hashlib.sha256(support.AXE_JS.read_bytes()).hexdigest() == support.AXE_SHA256
    assert support.AXE_JS.read_text()[:40].startswith(f"/*! axe v{support.AXE_VERSION}")


def test_chromium_is_debians_and_offline(browser: webdriver.Chrome):
    capabilities = browser.capabilities
    assert capabilities["browserName"] in {"chrome", "chromium"}
    assert capabilities["chrome"]["chromedriverVersion"].split(".")[0] == capabilities["browserVersion"].split(".")[0]
    assert browser.execute_script("return navigator.webdriver") is True


def test_report_page_renders_in_chromium_and_passes_axe(gateway: Gateway, browser, screenshot, accessible):
    # the report needs a bearer token: Chromium sends it with every request of this tab (DevTools protocol)
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": gateway.headers("system/*.read")})
    browser.get(f"{gateway.base}/peer/v1/reports/outcomes?format=html")

    assert browser.find_element(By.TAG_NAME, "h1").text.strip()
    assert browser.execute_script("return document.documentElement.lang")

    path = screenshot("outcome-report")
    assert path.parent == support.screenshots_dir()
    with Image.open(path) as image:
        image.load()
        assert image.format == "PNG"
        assert image.size == tuple(browser.execute_script("return [window.innerWidth, window.innerHeight]"))
        colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
        assert colours is not None and len(colours) > 10, "the screenshot is blank"

    violations = accessible("outcome-report")
    saved = support.artifacts_dir() / "axe" / f"{support.safe_name(path.stem)}.json"
    assert json.loads(saved.read_text())["testEngine"]["version"] == support.AXE_VERSION
    assert all(v["impact"] not in support.BLOCKING_IMPACTS for v in violations)


def test_axe_finds_a_serious_violation_when_there_is_one(gateway: Gateway, browser):
    """The check can fail: an image without alt text and an unlabelled input are reported as such."""
    browser.get(f"{gateway.base}/readyz")
    browser.execute_script(
        'document.body.innerHTML = \'<main><h1>x</h1><img src="data:,"><input type="text"></main>\';'
        "document.documentElement.lang = 'en'; document.title = 'x';"
    )
    found = support.blocking(support.axe_results(browser)["violations"])
    assert {"image-alt", "label"} <= {v["id"] for v in found}
    with pytest.raises(AssertionError, match="image-alt"):
        support.check_accessibility(browser, "deliberately-broken")
