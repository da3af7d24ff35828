"""GET /peer/v1/reports/outcomes on the seeded demo program: JSON, the CSV holding the same figures,
the HTML page with its charts inline; bad periods and formats answered as problem+json."""

from __future__ import annotations

import base64
import csv
import io
import re
import struct
from collections.abc import AsyncIterator

import httpx
import pytest

from service.app import create_app
from service.records.programs import get_by_code
from service.reports.render import COLUMNS
from service.settings import Settings
from service.store import Database
from tests.auth_support import FULL_SCOPES, fetch_token
from tests.conftest import BASE_URL, TOKEN_URL, register_client

PATH = "/peer/v1/reports/outcomes"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def demo_seeded(request: pytest.FixtureRequest) -> bool:
    """The tests on the seeded demo data start from the copied seeded database; the others from an empty one."""
    return "seeded" in request.fixturenames


@pytest.fixture
async def seeded(settings: Settings, database: Database) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway in process on the demo data of `peerlink seed` (seeded once per session and copied:
    ``demo_seeded``), as the demo program's client."""
    async with database.read() as conn:
        program = await get_by_code(conn, "demo")
    app = create_app(settings, database)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as http:
        key = await register_client(database, program, "reporter", FULL_SCOPES)
        http.headers["Authorization"] = f"Bearer {await fetch_token(http, key, 'reporter', TOKEN_URL)}"
        yield http


async def test_after_seeding_the_report_has_figures_and_suppressed_cells(seeded):
    answer = await seeded.get(PATH)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    report = answer.json()
    assert report["program"]["code"] == "demo" and report["suppression"]["threshold"] == 11
    shown = [r for r in report["outcomes"] if isinstance(r["participants"], int)]
    assert {r["instrument"] for r in shown} >= {"phq-9"}  # the demo's 12 participants are enough
    phq9 = next(r for r in shown if r["instrument"] == "phq-9" and r["group_by"] == "program")
    assert phq9["participants"] >= 11 and isinstance(phq9["mean_change"], float) and phq9["mean_change"] < 0
    assert any(r["participants"] == "suppressed" for r in report["outcomes"])  # the groups of 4
    assert all(r["participants"] != 0 for r in report["outcomes"])  # small cells never read as 0
    program = next(r for r in report["engagement"] if r["group_by"] == "program")
    assert program["participants"] == 12 and program["sessions"] == 24
    assert 0 < program["sessions_per_participant_month"] < 1


async def test_the_csv_holds_the_same_figures_as_the_json(seeded):
    period = {"from": "2026-01-01", "to": "2026-12-31"}
    report = (await seeded.get(PATH, params=period)).json()
    answer = await seeded.get(PATH, params=period | {"format": "csv"})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert list(rows[0]) == COLUMNS
    json_rows = [("outcomes", r) for r in report["outcomes"]] + [("engagement", r) for r in report["engagement"]]
    assert len(rows) == len(json_rows)
    for row, (section, expected) in zip(rows, json_rows, strict=True):
        assert (row["section"], row["period_from"], row["period_to"]) == (section, "2026-01-01", "2026-12-31")
        for column, value in expected.items():
            cell = row[column]
            if value is None:
                assert cell == "", column
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                assert float(cell) == value, column
            else:
                assert cell == value, column


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


async def test_the_html_page_carries_its_charts_and_fetches_nothing(seeded):
    answer = await seeded.get(PATH, params={"format": "html"})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    page = answer.text
    assert "Program outcome report" in page and "Harbor Peer Support Collective" in page
    assert "suppressed" in page and "CMS" in page and "Method" in page
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)" alt="([^"]+)"', page)
    assert len(images) == 3
    for encoded, alt in images:
        data = base64.b64decode(encoded, validate=True)
        width, height = _png_size(data)
        assert len(data) > 5_000 and width >= 600 and height >= 150, alt
    assert not re.search(r'(src|href)="(?!data:)', page)  # no external image, stylesheet or script
    assert "<script" not in page and "@import" not in page and "url(" not in page


async def test_bad_periods_and_formats_are_problems(client):
    cases = {
        "from=2026-02-30": 422,
        "to=yesterday": 422,
        "format=pdf": 422,
        "from=2026-05-01&to=2026-04-30": 400,
        "from=2000-01-01&to=2026-01-01": 400,
        "color=blue": 422,
        "to=0001-01-02": 400,  # a year before it is no day at all
    }
    for query, status in cases.items():
        answer = await client.get(f"{PATH}?{query}")
        assert answer.status_code == status, (query, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["status"] == status


async def test_an_empty_program_reports_every_cell_suppressed(client):
    report = (await client.get(PATH, params={"from": "2026-01-01", "to": "2026-06-30"})).json()
    assert report["period"] == {"from": "2026-01-01", "to": "2026-06-30"}
    assert {r["participants"] for r in report["outcomes"] + report["engagement"]} == {"suppressed"}


async def test_the_report_needs_a_token_and_a_scope_to_read_assessments(anonymous, database, program):
    assert (await anonymous.get(PATH)).status_code == 401
    key = await register_client(database, program, "encounters-only", "system/Encounter.rs")
    anonymous.headers["Authorization"] = f"Bearer {await fetch_token(anonymous, key, 'encounters-only', TOKEN_URL)}"
    answer = await anonymous.get(PATH)
    assert answer.status_code == 403 and answer.headers["content-type"] == "application/problem+json"
