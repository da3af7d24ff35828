"""The program screens in process: nothing without sign-in, role boundaries (a peer specialist sees
only their caseload, the integrator no participant at all, the auditor reads but changes nothing),
CSRF on every form, every view of a participant's data audited, and the accept/reject steps going
through the referral's use cases."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from mappings.ids import fhir_id
from service.console.roles import Role
from service.domain.referral import Referral
from service.store import RecordRepository
from service.store import kinds as k
from service.store.tables import audit_log
from tests.console import program_world
from tests.console.conftest import csrf_of, signed_in_as

PAGES = (
    "/console/program/referrals",
    "/console/program/participants",
    "/console/program/claims",
)


@pytest.fixture
async def world(database, program):
    return await program_world.build(database, program)


def participant_pages(world):
    return (
        f"/console/program/participants/{world.participant}",
        f"/console/program/participants/{world.participant}/disclosures",
        f"/console/program/referrals/{world.referral}",
    )


async def _referral(database, program, world) -> Referral:
    async with database.read() as conn:
        return await RecordRepository(k.REFERRALS).get(conn, program.id, world.referral)


async def _views(database, program):
    async with database.read() as conn:
        rows = await conn.execute(select(audit_log).where(audit_log.c.type == "console", audit_log.c.subtype == "view"))
        return [dict(r._mapping) for r in rows]


async def test_nothing_without_sign_in(console, database, program, world):
    for path in (*PAGES, *participant_pages(world)):
        answer = await console.get(path)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/console/sign-in"), path
    answer = await console.post(
        f"/console/program/referrals/{world.referral}/reject", data={"version": "1", "reason": "x"}
    )
    assert answer.status_code == 401
    assert (await _referral(database, program, world)).status.value == "requested"
    assert await _views(database, program) == []


async def test_integrator_sees_no_participant(console, database, program, world):
    await signed_in_as(console, database, program, Role.INTEGRATOR)
    for path in (*PAGES, *participant_pages(world)):
        answer = await console.get(path)
        assert answer.status_code == 403, path
        assert program_world.NOTE_TEXT not in answer.text and "Robin" not in answer.text
    assert await _views(database, program) == []


async def test_specialist_sees_own_caseload_only(console, database, program, world):
    await signed_in_as(console, database, program, Role.PEER_SPECIALIST, specialist_id=world.specialist)
    listing = await console.get("/console/program/participants")
    assert listing.status_code == 200
    assert "Robin Example" in listing.text and "Jordan Stranger" not in listing.text
    own = await console.get(f"/console/program/participants/{world.participant}")
    assert own.status_code == 200 and program_world.NOTE_TEXT in own.text
    other = await console.get(f"/console/program/participants/{world.other_participant}")
    assert other.status_code in (403, 404) and "Jordan" not in other.text
    missing = await console.get("/console/program/participants/no-such-person")
    assert missing.status_code == 404
    for path in ("/console/program/referrals", "/console/program/claims", participant_pages(world)[1]):
        assert (await console.get(path)).status_code == 403, path
    views = await _views(database, program)
    pid = fhir_id(program.identifier_system, "participant", world.participant)
    timeline = [v for v in views if v["detail"].get("page") == "timeline"]
    assert [v["detail"]["patients"] for v in timeline] == [[pid]]
    assert timeline[0]["client_id"] == "console:peer-specialist" and timeline[0]["detail"]["notes"] is True


async def test_timeline_shows_sessions_notes_and_outcome_chart(console, database, program, world, capsys):
    await signed_in_as(console, database, program, Role.SUPERVISOR)
    capsys.readouterr()
    page = await console.get(f"/console/program/participants/{world.participant}")
    logged = "".join(capsys.readouterr())
    assert "/console/program/participants/" in logged  # the request was logged, without PHI:
    assert "Robin" not in logged and "Example" not in logged and "landlord" not in logged
    assert page.status_code == 200
    html = page.text
    assert program_world.NOTE_TEXT in html and "Session (video) with Pat Peer" in html
    assert html.count("<circle") == 2 and 'role="img"' in html
    assert "Isolation after discharge" in html and "/disclosures" in html
    assert "http://" not in html.split("<svg", 1)[1].split("</svg>", 1)[0].replace("http://www.w3.org/2000/svg", "")


async def test_auditor_reads_the_inbox_but_cannot_act(console, database, program, world):
    await signed_in_as(console, database, program, Role.AUDITOR)
    inbox = await console.get("/console/program/referrals")
    assert inbox.status_code == 200 and "Riverside Clinic" in inbox.text and "Isolation after discharge" in inbox.text
    review = await console.get(f"/console/program/referrals/{world.referral}")
    assert review.status_code == 200 and "Pat Peer" in review.text and "accept-form" not in review.text
    token = csrf_of(review.text)
    answer = await console.post(
        f"/console/program/referrals/{world.referral}/reject",
        data={"csrf_token": token, "version": "1", "reason": "no"},
    )
    assert answer.status_code == 403
    assert (await _referral(database, program, world)).status.value == "requested"


async def test_accept_needs_csrf_and_goes_through_matching(console, database, program, world):
    await signed_in_as(console, database, program, Role.SUPERVISOR)
    review = await console.get(f"/console/program/referrals/{world.referral}")
    assert 'id="accept-form"' in review.text
    version = str((await _referral(database, program, world)).version)
    form = {"version": version, "specialist_id": world.specialist, "reason": "shares lived experience"}
    refused = await console.post(f"/console/program/referrals/{world.referral}/accept", data=form)
    assert refused.status_code == 403
    wrong = await console.post(
        f"/console/program/referrals/{world.referral}/accept", data={**form, "csrf_token": "0" * 64}
    )
    assert wrong.status_code == 403
    assert (await _referral(database, program, world)).status.value == "requested"
    token = csrf_of(review.text)
    no_reason = await console.post(
        f"/console/program/referrals/{world.referral}/accept", data={**form, "reason": " ", "csrf_token": token}
    )
    assert no_reason.status_code == 422 and "give a reason" in no_reason.text
    stale = await console.post(
        f"/console/program/referrals/{world.referral}/accept", data={**form, "version": "9", "csrf_token": token}
    )
    assert stale.status_code == 412 and "open it again" in stale.text
    done = await console.post(f"/console/program/referrals/{world.referral}/accept", data={**form, "csrf_token": token})
    assert done.status_code == 303 and done.headers["location"].endswith("?done=accepted")
    referral = await _referral(database, program, world)
    assert referral.status.value == "accepted" and referral.assigned_specialist_id == world.specialist
    assert [(s.action.value, s.by) for s in referral.transitions] == [
        ("receive", "supervisor"),
        ("accept", "supervisor"),
    ]
    assert referral.match is not None and referral.match.rank == 1
    async with database.read() as conn:
        rows = (await conn.execute(select(audit_log).where(audit_log.c.subtype == "referral-accept"))).mappings().all()
    assert len(rows) == 1 and rows[0]["action"] == "U" and rows[0]["detail"]["assignment"]["rank"] == 1
    inbox = await console.get("/console/program/referrals")
    assert "Riverside Clinic" not in inbox.text and "No new referrals" in inbox.text


async def test_reject_with_a_reason(console, database, program, world):
    await signed_in_as(console, database, program, Role.PROGRAM_ADMIN)
    review = await console.get(f"/console/program/referrals/{world.referral}")
    token, version = csrf_of(review.text), str((await _referral(database, program, world)).version)
    done = await console.post(
        f"/console/program/referrals/{world.referral}/reject",
        data={"csrf_token": token, "version": version, "reason": "outside our county"},
    )
    assert done.status_code == 303
    referral = await _referral(database, program, world)
    assert referral.status.value == "rejected" and referral.transitions[-1].reason == "outside our county"
    again = await console.post(
        f"/console/program/referrals/{world.referral}/reject",
        data={"csrf_token": token, "version": str(referral.version), "reason": "twice"},
    )
    assert again.status_code == 409 and "rejected" in again.text
    missing = await console.post(
        "/console/program/referrals/nope/reject", data={"csrf_token": token, "version": "1", "reason": "x"}
    )
    assert missing.status_code == 404


async def test_claim_readiness_page(console, database, program, world):
    await signed_in_as(console, database, program, Role.SUPERVISOR)
    page = await console.get("/console/program/claims")
    assert page.status_code == 200
    assert "note-unsigned" in page.text and "1 blocked" in page.text.replace("<strong>", "").replace("</strong>", "")
    bad = await console.get("/console/program/claims?from=yesterday")
    assert bad.status_code == 400 and "from must be a date" in bad.text
    reversed_ = await console.get("/console/program/claims?from=2026-02-01&to=2026-01-01")
    assert reversed_.status_code == 400
    unknown = await console.get("/console/program/claims?payer=nobody")
    assert unknown.status_code == 400


async def test_disclosures_page_lists_a_real_read(console, database, program, world):
    from tests.auth_support import fetch_token
    from tests.conftest import register_client
    from tests.console.conftest import CONSOLE_URL

    key = await register_client(
        database, program, "hospital-app", "system/*.rs", organization=program_world.HOSPITAL_ORG
    )
    token = await fetch_token(console, key, "hospital-app", f"{CONSOLE_URL}/auth/token")
    pid = fhir_id(program.identifier_system, "participant", world.participant)
    read = await console.get(
        f"/fhir/Patient/{pid}", headers={"Authorization": f"Bearer {token}", "X-Purpose-Of-Use": "TREAT"}
    )
    assert read.status_code == 200, read.text
    await signed_in_as(console, database, program, Role.PROGRAM_ADMIN)
    page = await console.get(f"/console/program/participants/{world.participant}/disclosures")
    assert page.status_code == 200
    html = page.text
    assert "Who received my information" in html and "Robin Example" in html
    assert "General Hospital" in html and program_world.HOSPITAL_ORG in html
    assert "read: 1 Patient" in html and "TREAT" in html
    assert 'class="stacked no-print"' in html
    none = await console.get(f"/console/program/participants/{world.other_participant}/disclosures")
    assert none.status_code == 200 and "were not given to any organisation" in none.text
    bad = await console.get(f"/console/program/participants/{world.participant}/disclosures?from=2026-13-01")
    assert bad.status_code == 400
    views = [v for v in await _views(database, program) if v["detail"].get("page") == "disclosures"]
    assert [v["detail"]["returned"] for v in views] == [1, 0]
