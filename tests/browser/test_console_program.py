"""The program screens in headless Chromium against a real gateway process (seeded demo program):
sign in through the form, accept a referral from the inbox, open a participant's timeline with its
outcome chart, look at claim readiness, and print a participant's accounting of disclosures (a real
read by a hospital's client appears in it). Each page is screenshotted and checked with axe-core."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser import support
from tests.browser.console_users import PASSWORD, add_user, seeded
from tests.e2e.gateway import PEERLINK, Gateway

pytestmark = pytest.mark.e2e


def sign_in(browser: webdriver.Chrome, gateway: Gateway, username: str, target: str = "/console/") -> None:
    browser.get(f"{gateway.base}/console/sign-in?next={target}")
    browser.find_element(By.ID, "username").send_keys(username)
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "form[action='/console/sign-in'] button[type=submit]").click()
    # the sign-in page's own URL carries the target in ?next=: wait for the page itself
    WebDriverWait(browser, 20).until(lambda driver: urlsplit(driver.current_url).path == target)


def heading(browser: webdriver.Chrome) -> str:
    return str(browser.find_element(By.TAG_NAME, "h1").text)


def test_accept_a_referral_from_the_inbox(gateway: Gateway, browser, screenshot, accessible):
    add_user(gateway, "ada", "program-admin")
    sign_in(browser, gateway, "ada", "/console/program/referrals")
    assert heading(browser) == "Referral inbox"
    rows = browser.find_elements(By.CSS_SELECTOR, "main table tbody tr")
    assert rows, "the seeded program has a new referral"
    screenshot("inbox")
    accessible("inbox")
    rows[0].find_element(By.CSS_SELECTOR, "a").click()
    WebDriverWait(browser, 10).until(ready.presence_of_element_located((By.ID, "accept-form")))
    assert "Match suggestions" in browser.page_source
    accessible("referral")
    # keyboard only: the first Tab reaches the skip link; in the form, type the reason, Tab to the
    # button and press Enter
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    assert browser.switch_to.active_element.text == "Skip to main content"
    reason = browser.find_element(By.ID, "accept-reason")
    label = browser.find_element(By.CSS_SELECTOR, "label[for='accept-reason']")
    assert label.text.startswith("Why this specialist")
    reason.send_keys("Shares lived experience and language")
    reason.send_keys(Keys.TAB)
    focused = browser.switch_to.active_element
    assert focused.get_attribute("type") == "submit" and focused.text == "Accept referral"
    focused.send_keys(Keys.ENTER)
    WebDriverWait(browser, 10).until(ready.url_contains("done=accepted"))
    status = browser.find_element(By.CSS_SELECTOR, "[role=status]").text
    assert "accepted" in status
    assert "Status" in browser.page_source and ">accepted<" in browser.page_source
    screenshot("referral-accepted")


def test_a_specialist_opens_a_participants_timeline(gateway: Gateway, browser, screenshot, accessible):
    specialist, _ = seeded(gateway)
    add_user(gateway, "sam", "peer-specialist", specialist=specialist)
    sign_in(browser, gateway, "sam", "/console/program/participants")
    links = browser.find_elements(By.CSS_SELECTOR, "main table a")
    assert links, "the specialist's caseload is listed"
    accessible("caseload")
    name = links[0].text.removeprefix("Timeline of ")
    links[0].click()
    WebDriverWait(browser, 10).until(ready.title_contains(name))
    assert heading(browser) == name
    charts = browser.find_elements(By.CSS_SELECTOR, "svg.outcome-chart")
    assert charts and charts[0].get_attribute("role") == "img"
    assert browser.find_elements(By.CSS_SELECTOR, "ol.timeline .note"), "signed notes are shown to the specialist"
    assert browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)") == [
        f"{gateway.base}/console/static/console.css"
    ], "nothing but the console's stylesheet is fetched"
    screenshot("timeline")
    accessible("timeline")


def test_claim_readiness_page(gateway: Gateway, browser, screenshot, accessible):
    add_user(gateway, "sue", "supervisor")
    sign_in(browser, gateway, "sue", "/console/program/claims")
    assert heading(browser) == "Claim readiness"
    summary = browser.find_element(By.CSS_SELECTOR, "main [role=status]").text
    assert "finished session" in summary and "ready" in summary
    screenshot("claims")
    accessible("claims")


def _hospital_read(gateway: Gateway, workdir: Path, participant_fhir_id: str) -> None:
    """A hospital's client (boundary: the seeded consents' hospital) reads the participant's Patient."""
    from tests.browser.console_users import SANDBOX_HOSPITAL_KEY

    key = workdir / "hospital.pem"
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(key)],
        check=True,
        capture_output=True,
    )
    jwks = workdir / "hospital.jwks.json"
    done = subprocess.run([PEERLINK, "keys", "jwks", str(key)], env=gateway.env, check=True, capture_output=True)
    jwks.write_bytes(done.stdout)
    subprocess.run(
        [
            PEERLINK,
            "clients",
            "add",
            "hospital-reader",
            "--jwks",
            str(jwks),
            "--scopes",
            "system/Patient.rs",
            "--org",
            SANDBOX_HOSPITAL_KEY,
        ],
        env=gateway.env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    token = subprocess.run(
        [PEERLINK, "token", "--client", "hospital-reader", "--key", str(key)],
        env=gateway.env,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()
    import httpx

    answer = httpx.get(
        f"{gateway.base}/fhir/Patient/{participant_fhir_id}",
        headers={"Authorization": f"Bearer {token}", "X-Purpose-Of-Use": "TREAT"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text


def test_print_the_disclosures_page(gateway: Gateway, browser, screenshot, accessible, tmp_path):
    _, participant = seeded(gateway)
    _hospital_read(gateway, tmp_path, participant.fhir_id)
    add_user(gateway, "pria", "program-admin")
    sign_in(browser, gateway, "pria", f"/console/program/participants/{participant.id}")
    browser.find_element(By.PARTIAL_LINK_TEXT, "Who received").click()
    WebDriverWait(browser, 10).until(ready.url_contains("/disclosures"))
    assert heading(browser) == "Who received my information"
    cells = [td.text for td in browser.find_elements(By.CSS_SELECTOR, "table.disclosures tbody td")]
    assert any("hospital-reader" in c for c in cells) and "TREAT" in cells
    screenshot("disclosures")
    accessible("disclosures")
    # the printout: navigation and controls left off, the table kept
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    hidden = browser.execute_script(
        "return ['.site-nav', '.site-header', 'form.no-print']"
        ".map(s => getComputedStyle(document.querySelector(s)).display)"
    )
    assert hidden == ["none", "none", "none"]
    assert browser.find_element(By.CSS_SELECTOR, "table.disclosures").is_displayed()
    screenshot("disclosures-print")
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
    from selenium.webdriver.common.print_page_options import PrintOptions

    options = PrintOptions()
    options.background = False
    pdf = base64.b64decode(browser.print_page(options))
    assert pdf.startswith(b"%PDF-") and b"%%EOF" in pdf[-1024:]
    assert pdf.count(b"/Type /Page") - pdf.count(b"/Type /Pages") >= 1
    out = support.artifacts_dir() / "disclosures.pdf"
    out.write_bytes(pdf)
    (support.artifacts_dir() / "disclosures.json").write_text(json.dumps({"bytes": len(pdf)}))
