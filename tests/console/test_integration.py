"""The integrator's screens in process: connections and health, a dead letter with the EHR's reason
and its replay, clients and keys, subscriptions, exports, the FHIR preview (no notes for the
integrator), the audit chain, and who may open them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, select

from service.console.audit import patients_of
from service.console.roles import Role
from service.exchange import connections
from service.store.tables import audit_log, outbox
from tests.console.conftest import csrf_of, signed_in_as
from tests.exchange.support import private_key_file
from tests.factories import World

REASON = "HTTP 422 (business-rule): Encounter.subject is not a known patient"


async def _connection_with_dead_letter(database, program, tmp_path: Path) -> int:
    values = {
        "name": "general-hospital",
        "base_url": "https://ehr.example.org/fhir",
        "client_id": "peerlink",
        "organization": "urn:oid:2.16.840.1.113883.3.1|general",
        "key_file": str(private_key_file(tmp_path)),
        "push": ["encounters", "notes"],
    }
    now = datetime.now(UTC)
    async with database.transaction() as conn:
        await connections.add(conn, program.id, values, now)
        row = {
            "program_id": program.id,
            "connection": "general-hospital",
            "kind": "encounter",
            "record_id": "enc-1",
            "participant_id": "p-1",
            "attempts": 3,
            "created_at": now - timedelta(hours=2),
            "next_attempt_at": now,
            "finished_at": now - timedelta(minutes=5),
        }
        dead = {**row, "state": "dead", "last_error": REASON, "ehr_status": 422, "ehr_outcome": "error business-rule"}
        result = await conn.execute(insert(outbox).values(**dead).returning(outbox.c.pk))
        await conn.execute(insert(outbox).values(**{**row, "record_id": "enc-2", "state": "pending"}))
        return int(result.scalar_one())


async def test_connections_show_their_health(console, database, program, tmp_path):
    await _connection_with_dead_letter(database, program, tmp_path)
    await signed_in_as(console, database, program, Role.INTEGRATOR)
    page = await console.get("/console/integration/connections")
    assert page.status_code == 200
    assert "general-hospital" in page.text
    row = page.text.split('href="/console/integration/connections/general-hospital">general-hospital</a>')[1]
    cells = [c.split("</td>")[0].strip() for c in row.split("<td>")[1:8]]
    assert cells[0] == "enabled" and cells[1] == "never"
    assert cells[2] == "1" and cells[3] == "2 h 0 min"  # one waiting, queued two hours ago
    assert "1</a>" in cells[5]  # one dead letter


async def test_a_dead_letter_shows_the_ehr_reason_and_replays(console, database, program, tmp_path):
    pk = await _connection_with_dead_letter(database, program, tmp_path)
    await signed_in_as(console, database, program, Role.INTEGRATOR)
    page = await console.get("/console/integration/connections/general-hospital")
    assert page.status_code == 200
    assert REASON in page.text and "HTTP 422: HTTP 422" not in page.text  # the status once
    assert 'aria-label="Replay dead letter ' + str(pk) in page.text
    answer = await console.post(
        "/console/integration/deadletters/replay", data={"ids": str(pk), "csrf_token": csrf_of(page.text)}
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/integration/deadletters?replayed=1"
    async with database.read() as conn:
        state = (await conn.execute(select(outbox.c.state).where(outbox.c.pk == pk))).scalar_one()
        events = list(await conn.execute(select(audit_log).where(audit_log.c.subtype == "deadletters-replay")))
    assert state == "pending"
    assert events[0].client_id == "console:integrator" and events[0].detail["ids"] == [pk]
    after = await console.get(answer.headers["location"])
    assert "1 dead letter queued again." in after.text and "No dead letters." in after.text


async def test_replay_of_an_unknown_dead_letter_is_refused(console, database, program, tmp_path):
    await _connection_with_dead_letter(database, program, tmp_path)
    await signed_in_as(console, database, program, Role.INTEGRATOR)
    token = csrf_of((await console.get("/console/")).text)
    answer = await console.post("/console/integration/deadletters/replay", data={"ids": "999999", "csrf_token": token})
    assert answer.status_code == 404
    answer = await console.post("/console/integration/deadletters/replay", data={"ids": "x", "csrf_token": token})
    assert answer.status_code == 422
    answer = await console.post("/console/integration/deadletters/replay", data={"csrf_token": token})
    assert answer.status_code == 400


async def test_the_auditor_sees_dead_letters_but_no_replay(console, database, program, tmp_path):
    await _connection_with_dead_letter(database, program, tmp_path)
    await signed_in_as(console, database, program, Role.AUDITOR)
    page = await console.get("/console/integration/deadletters")
    assert page.status_code == 200 and REASON in page.text
    assert "Replay dead letter" not in page.text


async def test_program_staff_do_not_see_the_integration_screens(console, database, program):
    await signed_in_as(console, database, program, Role.SUPERVISOR)
    for path in ("connections", "deadletters", "clients", "subscriptions", "exports", "preview", "audit-chain"):
        answer = await console.get(f"/console/integration/{path}")
        assert answer.status_code == 403, path
    assert (await console.get("/console/admin/users")).status_code == 403
    home = await console.get("/console/")
    assert "/console/integration/" not in home.text


async def test_clients_keys_subscriptions_exports_and_users(console, peer, database, program):
    await signed_in_as(console, database, program, Role.PROGRAM_ADMIN)
    clients = await console.get("/console/integration/clients")
    assert clients.status_code == 200
    assert "console-test-client" in clients.text and "system/*.cruds peerlink.admin" in clients.text
    assert "in use" in clients.text  # the gateway's signing key
    for path, empty in (("subscriptions", "No subscription."), ("exports", "No bulk export.")):
        page = await console.get(f"/console/integration/{path}")
        assert page.status_code == 200 and empty in page.text
    kicked = await peer.get("/fhir/$export", headers={"Prefer": "respond-async", "Accept": "application/fhir+json"})
    assert kicked.status_code == 202
    exports = await console.get("/console/integration/exports")
    assert "console-test-client" in exports.text
    users = await console.get("/console/admin/users")
    assert users.status_code == 200 and "program-admin" in users.text


async def test_preview_renders_a_record_and_refuses_notes_to_the_integrator(console, peer, database, program):
    world = await World(peer).build()
    await signed_in_as(console, database, program, Role.INTEGRATOR)
    participant = await console.get(
        "/console/integration/preview", params={"kind": "participant", "id": world.ids["participant"]}
    )
    assert participant.status_code == 200
    assert "&#34;resourceType&#34;: &#34;Patient&#34;" in participant.text
    note = await console.get("/console/integration/preview", params={"kind": "note", "id": world.ids["note"]})
    assert note.status_code == 403 and "does not see notes" in note.text
    missing = await console.get("/console/integration/preview", params={"kind": "participant", "id": "nope"})
    assert missing.status_code == 404
    bad = await console.get("/console/integration/preview", params={"kind": "wizard", "id": "x"})
    assert bad.status_code == 400 and "Choose a kind" in bad.text
    async with database.read() as conn:
        previews = list(await conn.execute(select(audit_log).where(audit_log.c.subtype == "preview")))
        refused = list(await conn.execute(select(audit_log).where(audit_log.c.subtype == "refused")))
    assert previews[0].detail["patients"] == patients_of(program, [world.ids["participant"]])
    assert any(r.detail["reason"] == "the integrator role does not see notes" for r in refused)


async def test_the_program_admin_may_preview_a_note(console, peer, database, program):
    world = await World(peer).build()
    await signed_in_as(console, database, program, Role.PROGRAM_ADMIN)
    note = await console.get("/console/integration/preview", params={"kind": "note", "id": world.ids["note"]})
    assert note.status_code == 200 and "DocumentReference" in note.text
    async with database.read() as conn:
        [preview] = list(await conn.execute(select(audit_log).where(audit_log.c.subtype == "preview")))
    assert preview.detail["patients"] == patients_of(program, [world.ids["participant"]])  # the note's participant


async def test_audit_chain_page_verifies_the_chain(console, database, program):
    await signed_in_as(console, database, program, Role.INTEGRATOR)
    page = await console.get("/console/integration/audit-chain")
    assert page.status_code == 200
    assert "audit chain OK:" in page.text


async def test_the_users_page_shows_each_account_state(console, database, program):
    from sqlalchemy import update

    from service.console import accounts
    from service.store.tables import console_users
    from tests.console.conftest import make_user

    await make_user(database, program, "locked-lee", Role.SUPERVISOR)
    await make_user(database, program, "gone-gus", Role.AUDITOR)
    await make_user(database, program, "sso-sam", Role.INTEGRATOR, password=None, oidc_subject="s-1")
    async with database.transaction() as conn:
        later = datetime.now(UTC) + timedelta(minutes=10)
        await conn.execute(
            update(console_users).where(console_users.c.username == "locked-lee").values(locked_until=later)
        )
        await accounts.set_disabled(conn, "gone-gus", True, datetime.now(UTC))
    await signed_in_as(console, database, program, Role.PROGRAM_ADMIN)
    page = await console.get("/console/admin/users")
    rows = {r.split("</th>")[0]: r for r in page.text.split('<th scope="row">')[1:]}
    assert f"<td>locked until {later:%Y-%m-%d %H:%M} UTC</td>" in rows["locked-lee"]
    assert "<td>disabled</td>" in rows["gone-gus"]
    assert "<td>OpenID Connect</td>" in rows["sso-sam"] and "<td>active</td>" in rows["sso-sam"]
    assert "<td>password</td>" in rows["program-admin"]
