"""A dead letter seen and replayed in headless Chromium: the gateway's real worker (`peerlink worker
--once`) delivers the seeded records to an EHR on loopback that refuses them all (422 with an
OperationOutcome); an integrator signs in, sees the dead letters with the EHR's reason, replays one,
and the page says so (and the row is queued again). Each page passes axe."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.console_users import SANDBOX_HOSPITAL_KEY, add_user
from tests.browser.refusing_ehr import DIAGNOSTICS, refusing_ehr
from tests.browser.test_console_program import heading, sign_in
from tests.e2e.gateway import PEERLINK, Gateway

pytestmark = pytest.mark.e2e


def _peerlink(gateway: Gateway, *args: str) -> str:
    done = subprocess.run([PEERLINK, *args], env=gateway.env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_see_a_dead_letter_and_replay_it(gateway: Gateway, browser, screenshot, accessible, tmp_path: Path):
    key = tmp_path / "peerlink-at-ehr.pem"
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(key)],
        check=True,
        capture_output=True,
    )
    with refusing_ehr() as (base_url, refused):
        _peerlink(
            gateway,
            "ehr",
            "add",
            "refusing-hospital",
            "--base-url",
            base_url,
            "--client-id",
            "peerlink",
            "--org",
            SANDBOX_HOSPITAL_KEY,
            "--key",
            str(key),
            "--backfill",
        )
        _peerlink(gateway, "worker", "--once")
    assert refused, "the worker delivered to the refusing EHR"
    listed = _peerlink(gateway, "deadletters", "list")
    assert "refusing-hospital" in listed

    add_user(gateway, "ivy", "integrator")
    sign_in(browser, gateway, "ivy", "/console/integration/deadletters")
    assert heading(browser) == "Dead letters"
    rows = browser.find_elements(By.CSS_SELECTOR, "main table tbody tr")
    assert rows
    first = rows[0].find_elements(By.TAG_NAME, "td")
    letter_id = first[0].text
    assert first[1].text == "refusing-hospital" and "HTTP 422" in first[5].text
    first[5].find_element(By.TAG_NAME, "summary").click()  # the OperationOutcome, shown on demand
    assert DIAGNOSTICS in first[5].text
    screenshot("dead-letters")
    accessible("dead-letters")
    before = len(rows)
    rows[0].find_element(By.CSS_SELECTOR, f"button[aria-label='Replay dead letter {letter_id}']").click()
    WebDriverWait(browser, 10).until(ready.url_contains("replayed=1"))
    assert "1 dead letter queued again." in browser.page_source
    after = browser.find_elements(By.CSS_SELECTOR, "main table tbody tr")
    assert len(after) == before - 1
    assert letter_id not in [r.find_elements(By.TAG_NAME, "td")[0].text for r in after]
    screenshot("replayed")
    accessible("replayed")
