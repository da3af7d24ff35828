"""Server-side sessions: the cookie holds a random value, the table its SHA-256. A session ends when
unused for the idle timeout, at its absolute lifetime, at sign-out, or when its account is disabled.

Cookies are HttpOnly, SameSite=Lax, Path=/, and Secure unless the gateway's public URL is plain http
on a loopback address (then the browser would not send a Secure cookie back); a Secure cookie carries
the ``__Host-`` prefix (no subdomain can set or shadow it).

CSRF: a form's token is derived from a value only the browser's cookie holds (the session's, or
before sign-in a pre-session cookie's): SHA-256 of a fixed label and that value. A page on another
site can neither read the cookie nor compute the token; every POST is checked (security.py).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from service.settings import Settings
from service.store.tables import console_sessions, console_users

SESSION_COOKIE = "peerlink-console"
PRESESSION_COOKIE = "peerlink-console-pre"
TOUCH_SECONDS = 30
"""last_seen_at is written at most this often per session (fewer writes; the idle timeout is minutes)."""


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def csrf_token(cookie_value: str) -> str:
    return hashlib.sha256(b"peerlink-console-csrf:" + cookie_value.encode()).hexdigest()


def csrf_matches(cookie_value: str | None, sent: str | None) -> bool:
    if not cookie_value or not sent:
        return False
    return hmac.compare_digest(csrf_token(cookie_value), sent)


def is_loopback_http(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme != "http":
        return False
    host = (parts.hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class CookiePolicy:
    secure: bool

    @classmethod
    def of(cls, settings: Settings) -> CookiePolicy:
        return cls(secure=not is_loopback_http(settings.base_url))

    def name(self, base: str) -> str:
        return f"__Host-{base}" if self.secure else base

    def attributes(self, max_age: int | None) -> dict[str, object]:
        return {"httponly": True, "samesite": "lax", "secure": self.secure, "path": "/", "max_age": max_age}


@dataclass(frozen=True)
class SessionRow:
    pk: int
    user_pk: int
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime


async def start(conn: AsyncConnection, user_pk: int, method: str, now: datetime, settings: Settings) -> str:
    """A new session for the account; returns the cookie value (kept nowhere else)."""
    value = secrets.token_urlsafe(32)
    expires = now + timedelta(hours=settings.console_session_hours)
    row = {"token_hash": digest(value), "user_pk": user_pk, "method": method}
    await conn.execute(insert(console_sessions).values(**row, created_at=now, last_seen_at=now, expires_at=expires))
    await conn.execute(delete(console_sessions).where(console_sessions.c.expires_at < now))  # tidy the old ones
    return value


async def find(conn: AsyncConnection, value: str, now: datetime, settings: Settings) -> tuple[SessionRow | None, str]:
    """The live session the cookie value names, and what to write: ("touch": last_seen_at is due an
    update; "end": the session is over: idle too long, expired, or its account disabled; "": nothing).
    A read: the caller writes (:func:`touch`, :func:`end_pk`) only when asked to."""
    s = console_sessions.c
    query = (
        select(s.pk, s.user_pk, s.created_at, s.last_seen_at, s.expires_at, console_users.c.disabled)
        .join(console_users, console_users.c.pk == s.user_pk)
        .where(s.token_hash == digest(value))
    )
    row = (await conn.execute(query)).first()
    if row is None:
        return None, ""
    found = SessionRow(row.pk, row.user_pk, row.created_at, row.last_seen_at, row.expires_at)
    idle = now - row.last_seen_at > timedelta(minutes=settings.console_idle_minutes)
    if idle or now >= row.expires_at or row.disabled:
        return None, "end"
    if (now - row.last_seen_at).total_seconds() >= TOUCH_SECONDS:
        return found, "touch"
    return found, ""


async def touch(conn: AsyncConnection, value: str, now: datetime) -> None:
    s = console_sessions.c
    await conn.execute(update(console_sessions).where(s.token_hash == digest(value)).values(last_seen_at=now))


async def end(conn: AsyncConnection, value: str) -> None:
    await conn.execute(delete(console_sessions).where(console_sessions.c.token_hash == digest(value)))


async def end_all(conn: AsyncConnection, user_pk: int) -> None:
    await conn.execute(delete(console_sessions).where(console_sessions.c.user_pk == user_pk))
