"""Sign-in, sessions, sign-out, CSRF, cookie flags, lockout and the idle timeout, in process."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from service.console.roles import Role
from service.store.tables import audit_log, console_sessions, console_users
from tests.console.conftest import PASSWORD, csrf_of, make_user, sign_in


async def _events(database, subtype: str | None = None) -> list[Any]:
    query = select(audit_log).where(audit_log.c.type == "console").order_by(audit_log.c.seq)
    async with database.read() as conn:
        rows = list(await conn.execute(query))
    return [r for r in rows if subtype is None or r.subtype == subtype]


async def test_a_page_without_sign_in_goes_to_the_sign_in_form(console):
    answer = await console.get("/console/")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/sign-in?next=/console/"
    form = await console.get(answer.headers["location"])
    assert form.status_code == 200
    assert '<label for="username">' in form.text and '<label for="password">' in form.text
    assert 'value="/console/"' in form.text


async def test_sign_in_sets_a_session_and_shows_home(console, database, program):
    await make_user(database, program, "ana", Role.SUPERVISOR)
    answer = await sign_in(console, "Ana")  # usernames are case-insensitive
    assert answer.headers["location"] == "/console/"
    home = await console.get("/console/")
    assert home.status_code == 200
    assert "Signed in as <strong>ana</strong> (supervisor)" in home.text
    assert home.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in home.headers["content-security-policy"]
    [event] = await _events(database, "sign-in")
    assert event.client_id == "console:ana" and event.outcome == "0" and event.program_id == program.id
    async with database.read() as conn:
        [stored] = list(await conn.execute(select(console_sessions)))
    cookie = console.cookies.get("peerlink-console")
    assert cookie and stored.token_hash != cookie and len(stored.token_hash) == 64  # only its hash is kept


async def test_session_cookie_flags_on_loopback(console, database, program):
    await make_user(database, program, "ana", Role.SUPERVISOR)
    answer = await sign_in(console, "ana")
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
    assert "secure" not in cookie  # http on loopback: a Secure cookie would never come back


async def test_session_cookie_is_secure_and_host_prefixed_on_https(database, program, keys_dir):
    import httpx

    from service.app import create_app
    from service.settings import Settings

    settings = Settings(
        database_url=database.url.render_as_string(hide_password=False),
        public_url="https://peerlink.example.org",
        keys_dir=keys_dir,
    )
    await make_user(database, program, "ana", Role.SUPERVISOR)
    transport = httpx.ASGITransport(app=create_app(settings, database))
    async with httpx.AsyncClient(transport=transport, base_url="https://peerlink.example.org") as http:
        await sign_in(http, "ana")
        session = [c for c in http.cookies.jar if c.name == "__Host-peerlink-console"]
        assert session and session[0].secure and session[0].path == "/"
        home = await http.get("/console/")
        assert home.status_code == 200


async def test_sign_in_needs_the_form_token(console, database, program):
    await make_user(database, program, "ana", Role.SUPERVISOR)
    await console.get("/console/sign-in")
    answer = await console.post("/console/sign-in", data={"username": "ana", "password": PASSWORD})
    assert answer.status_code == 403
    answer = await console.post(
        "/console/sign-in", data={"username": "ana", "password": PASSWORD, "csrf_token": "0" * 64}
    )
    assert answer.status_code == 403
    assert "peerlink-console" not in console.cookies


async def test_wrong_password_is_refused_and_audited_without_the_password(console, database, program):
    await make_user(database, program, "ana", Role.SUPERVISOR)
    form = await console.get("/console/sign-in")
    secret = "not-the-password-123"
    answer = await console.post(
        "/console/sign-in", data={"username": "ana", "password": secret, "csrf_token": csrf_of(form.text)}
    )
    assert answer.status_code == 401
    assert "Sign-in failed" in answer.text
    [event] = await _events(database, "sign-in-failed")
    assert event.outcome == "4" and event.detail["reason"] == "password"
    assert secret not in str(event.detail) and PASSWORD not in str(event.detail)


async def test_lockout_after_repeated_failures(console, database, program):
    await make_user(database, program, "ana", Role.SUPERVISOR)
    form = await console.get("/console/sign-in")
    token = csrf_of(form.text)
    for _ in range(5):  # the default: 5 failures in a row
        bad = await console.post(
            "/console/sign-in", data={"username": "ana", "password": "wrong-password-x", "csrf_token": token}
        )
        assert bad.status_code == 401
    [lock] = await _events(database, "lockout")
    assert lock.detail["minutes"] == 15
    # the right password does not open a locked account
    locked = await console.post("/console/sign-in", data={"username": "ana", "password": PASSWORD, "csrf_token": token})
    assert locked.status_code == 401
    assert (await _events(database, "sign-in-failed"))[-1].detail["reason"] == "locked"
    # once the lock has passed, it does
    async with database.transaction() as conn:
        past = datetime.now(UTC) - timedelta(seconds=1)
        await conn.execute(update(console_users).values(locked_until=past))
    assert (await sign_in(console, "ana")).status_code == 303


async def test_unknown_user_is_refused_like_a_wrong_password(console, database, program):
    form = await console.get("/console/sign-in")
    answer = await console.post(
        "/console/sign-in", data={"username": "nobody", "password": PASSWORD, "csrf_token": csrf_of(form.text)}
    )
    assert answer.status_code == 401
    [event] = await _events(database, "sign-in-failed")
    assert event.detail["reason"] == "unknown"


async def test_idle_timeout_ends_the_session(console, database, program):
    await make_user(database, program, "ana", Role.SUPERVISOR)
    await sign_in(console, "ana")
    assert (await console.get("/console/")).status_code == 200
    async with database.transaction() as conn:
        await conn.execute(update(console_sessions).values(last_seen_at=datetime.now(UTC) - timedelta(minutes=31)))
    answer = await console.get("/console/")
    assert answer.status_code == 303 and answer.headers["location"].startswith("/console/sign-in")
    async with database.read() as conn:
        assert list(await conn.execute(select(console_sessions))) == []  # the ended session is gone


async def test_absolute_lifetime_ends_the_session(console, database, program):
    await make_user(database, program, "ana", Role.SUPERVISOR)
    await sign_in(console, "ana")
    async with database.transaction() as conn:
        await conn.execute(update(console_sessions).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert (await console.get("/console/")).status_code == 303


async def test_sign_out_ends_the_session(console, database, program):
    await make_user(database, program, "ana", Role.AUDITOR)  # the auditor may sign out
    await sign_in(console, "ana")
    home = await console.get("/console/")
    cookie = console.cookies["peerlink-console"]
    answer = await console.post("/console/sign-out", data={"csrf_token": csrf_of(home.text)})
    assert answer.status_code == 303 and answer.headers["location"] == "/console/sign-in"
    assert len(await _events(database, "sign-out")) == 1
    console.cookies.set("peerlink-console", cookie)  # the old cookie is worth nothing now
    assert (await console.get("/console/")).status_code == 303


async def test_sign_out_needs_the_token(console, database, program):
    await make_user(database, program, "ana", Role.SUPERVISOR)
    await sign_in(console, "ana")
    answer = await console.post("/console/sign-out", data={"csrf_token": "f" * 64})
    assert answer.status_code == 403
    assert (await console.get("/console/")).status_code == 200  # still signed in
    [refused] = await _events(database, "refused")
    assert refused.detail["status"] == 403


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/fhir/Patient"])
async def test_sign_in_never_sends_the_browser_elsewhere(console, database, program, target):
    await make_user(database, program, "ana", Role.SUPERVISOR)
    form = await console.get("/console/sign-in")
    answer = await console.post(
        "/console/sign-in",
        data={"username": "ana", "password": PASSWORD, "csrf_token": csrf_of(form.text), "next": target},
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/console/"


async def test_a_disabled_account_loses_its_sessions(console, database, program):
    from service.console import accounts

    await make_user(database, program, "ana", Role.SUPERVISOR)
    await sign_in(console, "ana")
    async with database.transaction() as conn:
        await accounts.set_disabled(conn, "ana", True, datetime.now(UTC))
    assert (await console.get("/console/")).status_code == 303
    form = await console.get("/console/sign-in")
    answer = await console.post(
        "/console/sign-in", data={"username": "ana", "password": PASSWORD, "csrf_token": csrf_of(form.text)}
    )
    assert answer.status_code == 401


async def test_static_css_is_served_without_sign_in(console):
    answer = await console.get("/console/static/console.css")
    assert answer.status_code == 200 and "skip-link" in answer.text


async def test_console_events_are_fhir_audit_events(console, peer, database, program):
    await make_user(database, program, "ana", Role.SUPERVISOR)
    await sign_in(console, "ana")
    found = await peer.get("/fhir/AuditEvent", params={"_count": "50"})
    assert found.status_code == 200, found.text
    events = [e["resource"] for e in found.json()["entry"]]
    sign_ins = [e for e in events if any(c.get("code") == "console.sign-in" for c in e.get("subtype", []))]
    assert len(sign_ins) == 1
    assert sign_ins[0]["agent"][0]["who"]["identifier"]["value"] == "console:ana"
    assert "correct horse" not in found.text
