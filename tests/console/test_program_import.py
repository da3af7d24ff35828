"""The import screen in process: only program admins and supervisors, templates downloadable as CSV
and XLSX, the dry run names the bad row and imports nothing, confirm needs the CSRF token and imports
the checked file (once: a second confirm creates nothing twice), files that cannot be read are 4xx
pages."""

from __future__ import annotations

import base64
import io
import re

import pytest
from sqlalchemy import func, select

from service.console.roles import Role
from service.store.tables import audit_log, participants
from tests.console.conftest import csrf_of, signed_in_as
from tests.imports.support import csv_bytes, participant, table, xlsx_bytes

HOME = "/console/program/import"
_CONTENT = re.compile(r'name="content" value="([A-Za-z0-9+/=]+)"')


async def _count(database) -> int:
    async with database.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(participants))).scalar_one())


async def _check(console, token: str, filename: str, content: bytes, kind: str = "participants"):
    return await console.post(
        f"{HOME}/check", data={"csrf_token": token, "kind": kind}, files={"file": (filename, content, "text/csv")}
    )


@pytest.mark.parametrize("role", [Role.PEER_SPECIALIST, Role.INTEGRATOR, Role.AUDITOR])
async def test_only_admins_and_supervisors_import(console, database, program, role):
    options = {"specialist_id": None}
    if role is Role.PEER_SPECIALIST:
        from service.records import operations
        from service.records import types as t
        from tests.factories import specialist_body

        async with database.transaction() as conn:
            made = await operations.create(
                conn, program.id, t.SPECIALISTS, t.SPECIALISTS.fields.model_validate(specialist_body())
            )
        options["specialist_id"] = made.id
    await signed_in_as(console, database, program, role, **options)
    assert (await console.get(HOME)).status_code == 403
    assert (await console.get(f"{HOME}/templates/participants.csv")).status_code == 403
    home = await console.get("/console/")
    answer = await _check(
        console, csrf_of(home.text), "p.csv", csv_bytes(table("participants", [participant("1", "A")]))
    )
    assert answer.status_code == 403
    assert await _count(database) == 0


async def test_nothing_without_sign_in(console, database, program):
    assert (await console.get(HOME)).status_code == 303
    answer = await console.post(
        f"{HOME}/check", files={"file": ("p.csv", b"x", "text/csv")}, data={"kind": "participants"}
    )
    assert answer.status_code == 401


async def test_templates_download(console, database, program):
    await signed_in_as(console, database, program, Role.SUPERVISOR)
    page = await console.get(HOME)
    assert page.status_code == 200
    for kind in ("participants", "specialists", "sessions"):
        assert f"{HOME}/templates/{kind}.csv" in page.text and f"{HOME}/templates/{kind}.xlsx" in page.text
    answer = await console.get(f"{HOME}/templates/participants.csv")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    assert answer.text.splitlines()[0].startswith("external_id,")
    assert 'filename="peerlink-participants-template.csv"' in answer.headers["content-disposition"]
    workbook = await console.get(f"{HOME}/templates/sessions.xlsx")
    assert workbook.status_code == 200 and workbook.content[:2] == b"PK"
    from openpyxl import load_workbook

    sheet = load_workbook(io.BytesIO(workbook.content)).active
    assert sheet is not None and sheet.cell(1, 1).value == "external_id"
    assert (await console.get(f"{HOME}/templates/people.csv")).status_code == 400
    assert (await console.get(f"{HOME}/templates/participants.ods")).status_code == 400


async def test_a_bad_row_is_named_and_nothing_imported_then_a_clean_file(console, database, program):
    await signed_in_as(console, database, program, Role.PROGRAM_ADMIN)
    token = csrf_of((await console.get(HOME)).text)
    rows = [
        participant("p-1", "Alder"),
        participant("p-2", "Birch", birth_date="not a date"),
        participant("p-3", "Cedar"),
    ]
    bad = await _check(console, token, "people.csv", csv_bytes(table("participants", rows)))
    assert bad.status_code == 422
    assert "nothing was imported" in bad.text and 'id="import-problems"' in bad.text
    cells = re.findall(r"<tr><td>(\d+)</td><td>([^<]*)</td><td>", bad.text)
    assert cells == [("3", "birth_date")]  # row 3: the header is row 1
    assert "not a date" not in bad.text  # the reason, never the value
    assert "confirm-form" not in bad.text
    assert await _count(database) == 0

    good_rows = [participant("p-1", "Alder"), participant("p-2", "Birch")]
    good = await _check(console, token, "people.xlsx", xlsx_bytes(table("participants", good_rows)))
    assert good.status_code == 200 and 'id="confirm-form"' in good.text and "2 would be created" in good.text
    assert await _count(database) == 0  # a dry run
    content = _CONTENT.search(good.text)
    assert content is not None
    form = {"kind": "participants", "filename": "people.xlsx", "content": content.group(1)}
    refused = await console.post(f"{HOME}/confirm", data=form)
    assert refused.status_code == 403 and await _count(database) == 0
    done = await console.post(f"{HOME}/confirm", data={**form, "csrf_token": token})
    assert done.status_code == 200 and "2 created" in done.text
    assert await _count(database) == 2
    again = await console.post(f"{HOME}/confirm", data={**form, "csrf_token": token})
    assert again.status_code == 200 and "0 created, 2 imported before" in again.text
    assert await _count(database) == 2
    async with database.read() as conn:
        agents = (
            (await conn.execute(select(audit_log.c.client_id).where(audit_log.c.subtype == "import"))).scalars().all()
        )
    assert agents and set(agents) == {"console:program-admin"}


async def test_unreadable_files_are_4xx_pages(console, database, program):
    await signed_in_as(console, database, program, Role.SUPERVISOR)
    token = csrf_of((await console.get(HOME)).text)
    wrong_type = await _check(console, token, "people.pdf", b"%PDF-1.4")
    assert wrong_type.status_code == 415 and 'role="alert"' in wrong_type.text
    empty = await _check(console, token, "people.csv", b"")
    assert empty.status_code == 400
    header_only = await _check(console, token, "people.csv", csv_bytes(table("participants", [])))
    assert header_only.status_code == 400 and "no data rows" in header_only.text
    unknown = await _check(console, token, "people.csv", b"a,b\n1,2\n", kind="pets")
    assert unknown.status_code == 400
    garbled = await console.post(
        f"{HOME}/confirm", data={"csrf_token": token, "kind": "participants", "filename": "p.csv", "content": "@@@"}
    )
    assert garbled.status_code == 400
    fake = base64.b64encode(b"PK\x03\x04not really a workbook").decode()
    broken = await console.post(
        f"{HOME}/confirm", data={"csrf_token": token, "kind": "participants", "filename": "p.xlsx", "content": fake}
    )
    assert broken.status_code in (400, 415)
    assert await _count(database) == 0
    page = await console.get(HOME)
    assert "at most 34 KiB" in page.text  # the test gateway's 64 kB body limit, less the form, as base64
    rows = [participant(f"p-{i}", "Long") for i in range(650)]
    large = csv_bytes(table("participants", rows))
    assert 35 * 1024 < len(large) < 60_000
    too_large = await _check(console, token, "people.csv", large)
    assert too_large.status_code == 413 and "split it" in too_large.text
    assert await _count(database) == 0
