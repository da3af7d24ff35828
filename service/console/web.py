"""Rendering console pages: the Jinja2 environment (autoescaped), the navigation registry, the
security headers every console answer carries, and safe redirects."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
import jinja2.runtime
import markupsafe
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from .roles import Role
from .security import CurrentUser

PACKAGE = Path(__file__).parent
TEMPLATES = PACKAGE / "templates"
STATIC = PACKAGE / "static"
HOME = "/console/"

environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


@jinja2.pass_context
def csrf_field(context: jinja2.runtime.Context) -> markupsafe.Markup:
    """The hidden CSRF input every form carries: ``{{ csrf_field() }}``."""
    field = markupsafe.Markup('<input type="hidden" name="csrf_token" value="{}">')
    return field.format(context.get("csrf_token", ""))  # format escapes the value


environment.globals["csrf_field"] = csrf_field


def when(value: datetime | str | None, empty: str = "—") -> str:
    """A moment as people read it: ``2026-12-06 12:21 UTC`` (an ISO text or a datetime; None: ``empty``)."""
    if value is None or value == "":
        return empty
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


environment.filters["when"] = when

HEADERS = {
    # nothing inline, nothing from elsewhere: styles and scripts are the console's own files
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class NavItem:
    label: str
    href: str
    roles: frozenset[Role]
    section: str
    """The heading it is listed under (e.g. "Program", "Integration", "Administration")."""


NAV: list[NavItem] = []


def add_nav(label: str, href: str, roles: frozenset[Role], section: str) -> None:
    """List a page in the navigation for these roles (once; modules call it when imported)."""
    if not any(item.href == href for item in NAV):
        NAV.append(NavItem(label, href, frozenset(roles), section))


def nav_for(user: CurrentUser | None) -> list[tuple[str, list[NavItem]]]:
    """The navigation a user sees, grouped by section in the order sections were first added."""
    if user is None:
        return []
    sections: dict[str, list[NavItem]] = {}
    for item in NAV:
        if user.role in item.roles:
            sections.setdefault(item.section, []).append(item)
    return list(sections.items())


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status: int = 200,
    user: CurrentUser | None = None,
    csrf_token: str | None = None,
) -> HTMLResponse:
    """A page: ``templates/<template>`` (extending base.html) with the user, their navigation and the
    CSRF token every form carries (``{{ csrf_field() }}``)."""
    user = user or getattr(request.state, "console_user", None)
    token = csrf_token or (user.csrf_token if user is not None else "")
    values = {
        "user": user,
        "nav": nav_for(user),
        "csrf_token": token,
        "path": request.url.path,
        "title": "",
        **(context or {}),
    }
    body = environment.get_template(template).render(values)
    return HTMLResponse(body, status_code=status, headers=HEADERS)


def safe_next(target: str | None) -> str:
    """Where to go after sign-in: a path inside the console, never another site."""
    if not target or not target.startswith("/console") or target.startswith("//") or "\\" in target:
        return HOME
    if any(ord(c) < 32 for c in target):
        return HOME
    return target


def redirect(target: str, status: int = 303) -> Response:
    return RedirectResponse(target, status_code=status, headers=HEADERS)
