"""The import screen in headless Chromium against a real gateway process: download a template, check
a spreadsheet with one bad row (the report names its row and column, nothing is imported), then
check and confirm a clean one (its participants are then in the program); each page passes axe."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.console_users import add_user
from tests.browser.test_console_program import heading, sign_in
from tests.e2e.gateway import Gateway
from tests.imports.support import csv_bytes, participant, table, xlsx_bytes

pytestmark = pytest.mark.e2e
FAMILY = "Importedby-Browser"


def _participants_named(gateway: Gateway, family: str) -> int:
    found = 0
    url: str | None = f"{gateway.base}/peer/v1/participants?limit=500"
    headers = gateway.headers()
    while url:
        page = httpx.get(url, headers=headers, timeout=10).json()
        found += sum(1 for p in page["items"] if p["name"]["family"] == family)
        url = page.get("next")
    return found


def _check(browser: webdriver.Chrome, path: Path, verdict: str) -> None:
    """Check the file and wait for the report whose heading says ``verdict`` (a report already on the
    page is replaced: waiting for any report could read the old one, or an element being swapped out)."""
    browser.find_element(By.ID, "file").send_keys(str(path))
    browser.find_element(By.CSS_SELECTOR, "#check-form button[type=submit]").click()
    WebDriverWait(browser, 20).until(ready.text_to_be_present_in_element((By.ID, "report-heading"), verdict))


def test_import_a_bad_file_then_a_clean_one(gateway: Gateway, browser, screenshot, accessible, tmp_path):
    add_user(gateway, "ida", "program-admin")
    sign_in(browser, gateway, "ida", "/console/program/import")
    assert heading(browser) == "Import spreadsheets"
    template = browser.find_element(By.PARTIAL_LINK_TEXT, "Participants template (CSV)").get_attribute("href")
    assert template is not None
    cookies = {c["name"]: c["value"] for c in browser.get_cookies()}
    downloaded = httpx.get(template, cookies=cookies, timeout=10)
    assert downloaded.status_code == 200 and downloaded.text.startswith("external_id,")
    accessible("import-form")

    bad = tmp_path / "participants-bad.csv"
    rows = [
        participant("br-1", FAMILY),
        participant("br-2", FAMILY, birth_date="31/02/1990"),
        participant("br-3", FAMILY),
    ]
    bad.write_bytes(csv_bytes(table("participants", rows)))
    _check(browser, bad, "nothing was imported")
    problems = [
        [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
        for tr in browser.find_elements(By.CSS_SELECTOR, "#import-problems tbody tr")
    ]
    assert [p[:2] for p in problems] == [["3", "birth_date"]]
    assert "nothing was imported" in browser.find_element(By.ID, "report-heading").text
    assert not browser.find_elements(By.ID, "confirm-form")
    screenshot("bad-file")
    accessible("bad-file")
    assert _participants_named(gateway, FAMILY) == 0

    clean = tmp_path / "participants-clean.xlsx"
    clean.write_bytes(xlsx_bytes(table("participants", [participant("br-1", FAMILY), participant("br-2", FAMILY)])))
    _check(browser, clean, "ready to import")
    assert "ready to import" in browser.find_element(By.ID, "report-heading").text
    assert _participants_named(gateway, FAMILY) == 0  # checked, not imported
    screenshot("clean-file-checked")
    accessible("clean-file-checked")
    browser.find_element(By.CSS_SELECTOR, "#confirm-form button[type=submit]").click()
    WebDriverWait(browser, 20).until(ready.text_to_be_present_in_element((By.ID, "report-heading"), "Imported"))
    assert "2 created" in browser.find_element(By.CSS_SELECTOR, "#import-report [role=status]").text
    screenshot("imported")
    accessible("imported")
    assert _participants_named(gateway, FAMILY) == 2
