"""Every console route, as found on the app: nothing without sign-in, no POST without the CSRF token,
no POST by the auditor. New screens are covered as soon as they are mounted."""

from __future__ import annotations

import re

import httpx
from fastapi.routing import APIRoute

from service.console.roles import Role
from tests.console.conftest import csrf_of, signed_in_as

PUBLIC = {
    ("GET", "/console/sign-in"),
    ("POST", "/console/sign-in"),
    ("GET", "/console/oidc/start"),  # 404 unless configured; then to the issuer
    ("GET", "/console/oidc/callback"),  # refused without a state begun here
}


def _all_routes(app) -> list[tuple[str, APIRoute]]:
    """(full path, route) of every route, routers included lazily or not."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # pragma: no cover - older FastAPI
        return [(r.path, r) for r in app.routes if isinstance(r, APIRoute)]
    contexts = iter_route_contexts(app.routes)
    return [(c.path or "", c.original_route) for c in contexts if isinstance(c.original_route, APIRoute)]


def _console_routes(app) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for full, route in _all_routes(app):
        if full.startswith("/console"):
            path = re.sub(r"\{[^}]+\}", "x1", full)
            found.extend((method, path) for method in sorted(route.methods or ()) if (method, full) not in PUBLIC)
    return found


def _app(http: httpx.AsyncClient):
    transport = http._transport
    assert isinstance(transport, httpx.ASGITransport)
    return transport.app


async def test_no_console_route_answers_without_sign_in(console):
    routes = _console_routes(_app(console))
    assert ("GET", "/console/") in routes and ("POST", "/console/sign-out") in routes
    for method, path in routes:
        answer = await console.request(method, path, data={"csrf_token": "0" * 64} if method != "GET" else None)
        if method in ("GET", "HEAD"):
            assert answer.status_code == 303, (method, path)
            assert answer.headers["location"].startswith("/console/sign-in?next="), (method, path)
        else:
            assert answer.status_code == 401, (method, path, answer.status_code)
        assert "console:" not in answer.text


async def test_no_console_post_without_the_csrf_token(console, database, program):
    await signed_in_as(console, database, program, Role.PROGRAM_ADMIN)
    for method, path in _console_routes(_app(console)):
        if method in ("GET", "HEAD"):
            continue
        for data in (None, {"csrf_token": "0" * 64}):
            answer = await console.request(method, path, data=data)
            assert answer.status_code == 403, (method, path, data, answer.status_code)
    assert (await console.get("/console/")).status_code == 200  # still signed in


async def test_the_auditor_changes_nothing(console, database, program):
    await signed_in_as(console, database, program, Role.AUDITOR)
    token = csrf_of((await console.get("/console/")).text)
    for method, path in _console_routes(_app(console)):
        if method in ("GET", "HEAD") or path == "/console/sign-out":
            continue
        answer = await console.request(method, path, data={"csrf_token": token})
        assert answer.status_code == 403, (method, path, answer.status_code)
