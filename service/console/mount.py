"""The console mounted on the gateway: the router of every page under ``/console``, its static files and
its error pages (the contract is the package's docstring, :mod:`service.console`)."""

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
