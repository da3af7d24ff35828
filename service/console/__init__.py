"""The web console at ``/console``: server-rendered pages (Jinja2, autoescaped; plain HTML forms) for
program staff and integrators, with sign-in, sessions and roles. Mounted by ``service.app`` with
:func:`install`. Nothing is fetched from elsewhere at view time: one CSS file in ``static/``.

The contract for the console's screens (this package's own, and ``service.console.program``):

- **Routers.** :func:`console_router` builds the router under ``/console`` and includes every
  sub-router; a screen package adds one line there (``router.include_router(program.router)``).
  Sub-router paths are relative to ``/console`` (``APIRouter(prefix="/program")`` serves
  ``/console/program/...``). Console routes stay out of the OpenAPI document (``include_in_schema``
  is off for the whole router).
- **Pages.** ``service.console.web.render(request, "program/x.html", {...})`` renders
  ``templates/program/x.html``, which ``{% extends "base.html" %}`` and fills ``{% block content %}``
  (and ``{% block title %}``). ``web.add_nav(label, href, roles, section)`` lists a page in the
  navigation for some roles (call it when the module is imported). No inline scripts or styles (the
  Content-Security-Policy forbids them); a chart is an ``<img>`` (a ``data:`` URI is allowed).
- **Who.** ``user: UserDep`` (service.console.security) is the signed-in :class:`CurrentUser` (id,
  username, role, program_id, specialist_id, csrf_token); ``Annotated[CurrentUser,
  require_roles(PROGRAM_STAFF, Role.AUDITOR)]`` also checks the role (groups in
  service.console.roles). Without a session a GET is redirected to the sign-in page and anything
  else is a 401; a wrong role is a 403 page. ``raise ConsoleRefused(status, message)`` for any
  other refusal (rendered as a page, audited).
- **Caseload.** ``service.console.caseload.caseload(conn, user)`` is the participant ids the user may
  see (None: the whole program); ``require_participant(conn, user, participant_id)`` refuses one
  outside it. The integrator sees no participant's data, notes least of all.
- **CSRF.** Every form has ``{{ csrf_field() }}``; every POST (any unsafe method) is checked by
  ``current_user`` before the handler runs (form field ``csrf_token`` or header ``X-CSRF-Token``),
  so a POST handler needs only to depend on the user. The auditor's POSTs are refused (403), sign-out
  excepted.
- **Audit.** ``await console_audit(conn_or_database, request, user, "view", detail={"patients":
  patients_of(program, [participant_id])})`` (service.console.audit) writes a console AuditEvent:
  every view of a participant's data, every action. ``patients`` holds FHIR Patient ids (as in the
  rest of the audit log), which ``patients_of`` makes from participant ids. In a transaction, call
  it last.
- **Tests.** tests/console/conftest.py: ``console`` (the gateway in process, an httpx client on a
  loopback URL), ``make_user(...)``, ``sign_in(http, username, password)``, ``csrf_of(html)``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from starlette.staticfiles import StaticFiles

from service.audit import write
from service.domain.errors import PeerLinkError

from . import integration, oidc, program, signin, technical
from .audit import record
from .security import ConsoleRefused, SignInRequired
from .web import STATIC, redirect, render

PREFIX = "/console"


def console_router() -> APIRouter:
    """Every console page: sign-in, home, then one sub-router per screen package."""
    router = APIRouter(prefix=PREFIX, include_in_schema=False)
    router.include_router(signin.router)
    router.include_router(oidc.router)
    router.include_router(integration.router)
    router.include_router(technical.router)
    router.include_router(program.router)  # service.console.program: the program staff's screens
    return router


def _is_console(request: Request) -> bool:
    return request.url.path == PREFIX or request.url.path.startswith(PREFIX + "/")


async def _refused(request: Request, status: int, message: str) -> Response:
    user = getattr(request.state, "console_user", None)
    detail = {"status": status, "method": request.method, "reason": message}
    await write(request.app.state.database, record(request, user, "refused", action="E", outcome="4", detail=detail))
    return render(request, "error.html", {"title": "Not allowed", "status": status, "message": message}, status=status)


async def _on_sign_in_required(request: Request, exc: Exception) -> Response:
    if request.method in ("GET", "HEAD"):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        from urllib.parse import quote

        return redirect(f"{signin.SIGN_IN}?next={quote(target, safe='/')}")
    return await _refused(request, 401, "sign in first")


async def _on_console_refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ConsoleRefused)
    return await _refused(request, exc.status, exc.message)


def install(app: FastAPI) -> None:
    """Mount the console on the gateway: its pages, its static files, its error pages."""
    app.include_router(console_router())
    app.mount(f"{PREFIX}/static", StaticFiles(directory=STATIC), name="console-static")
    app.add_exception_handler(SignInRequired, _on_sign_in_required)
    app.add_exception_handler(ConsoleRefused, _on_console_refused)
    api_handler: Any = app.exception_handlers.get(PeerLinkError)

    async def on_peerlink_error(request: Request, exc: Exception) -> Response:
        """A domain error on a console page is a page (elsewhere the API's problem+json, unchanged)."""
        if _is_console(request) and isinstance(exc, PeerLinkError):
            return render(
                request,
                "error.html",
                {"title": exc.title, "status": exc.status, "message": exc.detail},
                status=exc.status,
            )
        assert api_handler is not None
        response: Response = await api_handler(request, exc)
        return response

    app.add_exception_handler(PeerLinkError, on_peerlink_error)
