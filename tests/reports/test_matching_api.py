"""GET /peer/v1/reports/matching over the real token and store: assignments made through the assign
route keep their factor values on the referral and appear in the report (a referral accepted by hand
does not); JSON, the CSV with the same rows, the HTML page; bad input answered as problem+json."""

from __future__ import annotations

import base64
import csv
import io
import re
from typing import Any

from service.reports.matching_render import COLUMNS
from tests.auth_support import fetch_token
from tests.conftest import TOKEN_URL, register_client
from tests.factories import create, participant_body, referral_body, specialist_body

PATH = "/peer/v1/reports/matching"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


async def _assigned(client: Any, specialist: str, language: str) -> str:
    participant = await create(client, "participants", participant_body(language=language, address={"state": "OR"}))
    referral: str = (await create(client, "referrals", referral_body(participant["id"])))["id"]
    assert (await client.post(f"/peer/v1/referrals/{referral}/receive", json={"by": "intake"})).status_code == 200
    answer = await client.post(
        f"/peer/v1/referrals/{referral}/assign", json={"specialist_id": specialist, "reason": "best fit", "by": "sup"}
    )
    assert answer.status_code == 200, answer.text
    return referral


async def _program(client: Any, count: int) -> tuple[str, list[str]]:
    ana = (
        await create(
            client,
            "specialists",
            specialist_body(name={"family": "Ana"}, languages=["es", "en"], weekly_capacity=30),
        )
    )["id"]
    return str(ana), [await _assigned(client, ana, "es") for _ in range(count)]


async def test_assignments_keep_their_factors_and_the_report_counts_them(client):
    ana, referrals = await _program(client, 11)
    stored = (await client.get(f"/peer/v1/referrals/{referrals[0]}")).json()
    match = stored["match"]
    assert match["rank"] == 1 and match["overridden"] is False and match["factors"]["language"] == 1.0
    assert set(match["factors"]) == set(match["weights"]) and match["weights"]["lived_experience"] == 3.0
    # accepted by hand, without matching: no factors, not in the report
    other = (await create(client, "participants", participant_body()))["id"]
    manual = (await create(client, "referrals", referral_body(other)))["id"]
    await client.post(f"/peer/v1/referrals/{manual}/receive", json={"by": "intake"})
    accepted = await client.post(f"/peer/v1/referrals/{manual}/accept", json={"by": "sup", "specialist_id": ana})
    assert accepted.status_code == 200 and accepted.json()["match"] is None

    answer = await client.get(PATH)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    report = answer.json()
    rows = {(r["group_by"], r["group"]): r for r in report["rows"]}
    program = rows[("program", "all")]
    assert program["assignments"] == 11 and program["participants"] == 11 and program["top_match_share"] == 1.0
    scores = [(await client.get(f"/peer/v1/referrals/{r}")).json()["match"]["score"] for r in referrals]
    assert program["mean_score"] == round(sum(scores) / 11, 2)  # capacity left falls as her caseload grows
    assert rows[("participant_language", "es")]["assignments"] == 11
    assert rows[("language", "same language")]["assignments"] == 11
    assert program["followed_30"] == "suppressed"  # assigned today: nobody followed 30 days yet
    fit = report["suggested_weights"]
    assert fit["status"] == "not enough history" and fit["applied"] is False
    assert fit["message"].startswith("not enough history (0 of 100")

    table = await client.get(PATH, params={"format": "csv"})
    assert table.status_code == 200 and table.headers["content-type"].startswith("text/csv")
    assert "attachment" in table.headers["content-disposition"]
    parsed = list(csv.DictReader(io.StringIO(table.text)))
    assert list(parsed[0]) == COLUMNS and len(parsed) == len(report["rows"]) + len(fit["weights"])
    assert next(r for r in parsed if r["group_by"] == "program")["assignments"] == "11"

    page = await client.get(PATH, params={"format": "html"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page.text)
    assert len(images) == 2 and all(base64.b64decode(i).startswith(PNG_SIGNATURE) for i in images)
    assert "never applied" in page.text and "http://" not in page.text and "https://" not in page.text


async def test_a_small_program_is_suppressed(client):
    await _program(client, 3)
    report = (await client.get(PATH)).json()
    assert {r["participants"] for r in report["rows"]} == {"suppressed"}


async def test_bad_input_is_a_problem(client):
    cases = {"from=2026-02-30": 422, "format=pdf": 422, "from=2026-05-01&to=2026-04-30": 400, "color=blue": 422}
    for query, status in cases.items():
        answer = await client.get(f"{PATH}?{query}")
        assert answer.status_code == status, (query, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"


async def test_the_report_needs_a_token_and_a_scope_to_read_referrals(anonymous, database, program):
    assert (await anonymous.get(PATH)).status_code == 401
    key = await register_client(database, program, "encounters-only", "system/Encounter.rs")
    anonymous.headers["Authorization"] = f"Bearer {await fetch_token(anonymous, key, 'encounters-only', TOKEN_URL)}"
    answer = await anonymous.get(PATH)
    assert answer.status_code == 403 and answer.headers["content-type"] == "application/problem+json"
