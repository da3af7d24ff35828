"""OpenID Connect sign-in against a real (tiny) identity provider on loopback: the code flow with
PKCE, state and nonce; the id_token verified against the provider's JWKS; the person matched to an
existing account (by subject, or by verified email then bound), never created."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from service.app import create_app
from service.console.roles import Role
from service.settings import Settings
from service.store import Database
from service.store.tables import audit_log, console_users
from tests.console.conftest import CONSOLE_URL, make_user
from tests.console.oidc_provider import CLIENT_ID, CLIENT_SECRET, Person, Provider, Running


@pytest.fixture
def idp() -> Iterator[Provider]:
    with Running(Provider()) as provider:
        yield provider


@pytest.fixture
def settings(database: Database, keys_dir: Path, idp: Provider) -> Settings:
    return Settings(
        database_url=database.url.render_as_string(hide_password=False),
        public_url=CONSOLE_URL,
        keys_dir=keys_dir,
        console_oidc_issuer=idp.issuer,
        console_oidc_client_id=CLIENT_ID,
        console_oidc_client_secret=CLIENT_SECRET,
        # The provider runs in a thread of this (busy, parallel) test process: the 5 s default
        # measured a loaded CI worker's GIL, not the console (seen once at 5.48 s).
        http_timeout_seconds=30,
    )


@pytest.fixture
async def browser() -> AsyncIterator[httpx.AsyncClient]:
    """What the browser does at the identity provider (a real HTTP client on loopback)."""
    async with httpx.AsyncClient(timeout=10) as http:
        yield http


async def _sign_in_via_idp(
    console: httpx.AsyncClient, browser: httpx.AsyncClient, next_url: str = "/console/"
) -> httpx.Response:
    start = await console.get("/console/oidc/start", params={"next": next_url})
    assert start.status_code == 303, start.text
    at_idp = await browser.get(start.headers["location"])
    assert at_idp.status_code == 302, at_idp.text
    back = urlsplit(at_idp.headers["location"])
    assert f"{back.scheme}://{back.netloc}" == CONSOLE_URL and back.path == "/console/oidc/callback"
    return await console.get(f"{back.path}?{back.query}")


async def _failures(database) -> list[str]:
    async with database.read() as conn:
        rows = await conn.execute(select(audit_log).where(audit_log.c.subtype == "sign-in-failed"))
        return [r.detail["reason"] for r in rows]


async def test_the_sign_in_page_offers_the_provider(console):
    page = await console.get("/console/sign-in")
    assert 'href="/console/oidc/start?next=/console/"' in page.text


async def test_the_authorization_request_carries_pkce_state_and_nonce(console, idp):
    start = await console.get("/console/oidc/start")
    query = parse_qs(urlsplit(start.headers["location"]).query)
    assert start.headers["location"].startswith(f"{idp.issuer}/authorize?")
    assert query["response_type"] == ["code"] and query["client_id"] == [CLIENT_ID]
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    assert len(query["state"][0]) >= 32 and len(query["nonce"][0]) >= 32
    assert query["redirect_uri"] == [f"{CONSOLE_URL}/console/oidc/callback"]
    assert "openid" in query["scope"][0].split()


async def test_sign_in_by_stored_subject(console, browser, database, program, idp):
    await make_user(database, program, "sam", Role.INTEGRATOR, password=None, oidc_subject="sub-1")
    idp.person = Person("sub-1")
    answer = await _sign_in_via_idp(console, browser, "/console/integration/connections")
    assert answer.status_code == 303 and answer.headers["location"] == "/console/integration/connections"
    home = await console.get("/console/")
    assert "Signed in as <strong>sam</strong>" in home.text
    async with database.read() as conn:
        [event] = list(await conn.execute(select(audit_log).where(audit_log.c.subtype == "sign-in")))
    assert event.detail["method"] == "oidc" and event.client_id == "console:sam"


async def test_sign_in_by_verified_email_binds_the_subject(console, browser, database, program, idp):
    await make_user(database, program, "ana", Role.SUPERVISOR, email="Ana@Example.org")
    idp.person = Person("sub-ana", email="ana@example.org")
    assert (await _sign_in_via_idp(console, browser)).status_code == 303
    async with database.read() as conn:
        bound = (
            await conn.execute(select(console_users.c.oidc_subject).where(console_users.c.username == "ana"))
        ).scalar()
    assert bound == "sub-ana"
    # another subject with the same email is not ana
    console.cookies.clear()
    idp.person = Person("sub-mallory", email="ana@example.org")
    assert (await _sign_in_via_idp(console, browser)).status_code == 401


async def test_nobody_is_created(console, browser, database, program, idp):
    idp.person = Person("sub-stranger", email="stranger@example.org")
    answer = await _sign_in_via_idp(console, browser)
    assert answer.status_code == 401 and "Sign-in failed" in answer.text
    assert await _failures(database) == ["no console account for this person"]
    async with database.read() as conn:
        assert list(await conn.execute(select(console_users))) == []


async def test_an_unverified_email_does_not_match(console, browser, database, program, idp):
    await make_user(database, program, "ana", Role.SUPERVISOR, email="ana@example.org")
    idp.person = Person("sub-ana", email="ana@example.org", email_verified=False)
    assert (await _sign_in_via_idp(console, browser)).status_code == 401


@pytest.mark.parametrize("tamper", ["nonce", "key", "audience"])
async def test_an_id_token_that_does_not_verify_signs_no_one_in(console, browser, database, program, idp, tamper):
    await make_user(database, program, "sam", Role.INTEGRATOR, password=None, oidc_subject="sub-1")
    idp.tamper = {tamper}
    answer = await _sign_in_via_idp(console, browser)
    assert answer.status_code == 401
    [reason] = await _failures(database)
    assert reason.startswith("the id_token did not verify")
    assert (await console.get("/console/")).status_code == 303


async def test_a_state_is_used_once(console, browser, database, program, idp):
    await make_user(database, program, "sam", Role.INTEGRATOR, password=None, oidc_subject="sub-1")
    start = await console.get("/console/oidc/start")
    at_idp = await browser.get(start.headers["location"])
    back = urlsplit(at_idp.headers["location"])
    assert (await console.get(f"{back.path}?{back.query}")).status_code == 303
    again = await console.get(f"{back.path}?{back.query}")
    assert again.status_code == 403
    forged = await console.get("/console/oidc/callback", params={"code": "x", "state": "made-up"})
    assert forged.status_code == 403
    assert idp.token_requests == 1  # neither replay reached the provider


async def test_without_configuration_there_is_no_oidc(database, program, keys_dir):
    settings = Settings(
        database_url=database.url.render_as_string(hide_password=False), public_url=CONSOLE_URL, keys_dir=keys_dir
    )
    app: FastAPI = create_app(settings, database)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=CONSOLE_URL) as http:
        assert (await http.get("/console/oidc/start")).status_code == 404
        assert "/console/oidc/start" not in (await http.get("/console/sign-in")).text
