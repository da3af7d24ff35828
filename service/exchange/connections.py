"""EHR connections: where an EHR is, how PeerLink authenticates to it, and what flows each way."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from service.auth.backend_client import PrivateKey, load_private_key
from service.auth.boundary import normalize_organization
from service.auth.scopes import valid_registration
from service.domain.errors import BadRequest, Conflict, NotFound, RuleViolation
from service.records.push_kinds import PUSH_KINDS as PUSH_KINDS
from service.store.tables import ehr_connections

from .needed_scopes import default_scopes, missing, needed

PROFILES = ("generic", "epic", "oracle")
ALGS = ("RS384", "ES384")


class KeyUnavailable(Exception):
    """The connection's private key cannot be loaded (the message never holds key material)."""


@dataclass(frozen=True)
class EhrConnection:
    name: str
    program_id: str
    base_url: str
    client_id: str
    key_file: str | None
    key_env: str | None
    kid: str | None
    alg: str
    scopes: str
    profile: str
    organization: str
    push: tuple[str, ...]
    poll_referrals: bool
    poll_seconds: int
    rate_per_second: int
    enabled: bool
    task_owner: str
    # the poll's progress changes with every poll; it is not what makes two connections the same
    poll_cursor: str | None = field(default=None, compare=False)
    polled_at: datetime | None = field(default=None, compare=False)
    # when its settings last changed: a worker renews its client (key, token) for a changed connection,
    # even when only the key file's contents changed (``ehr update`` after a key rotation)
    updated_at: datetime | None = None
    # the EHR refused a transaction Bundle (when, what it said): batches go as single writes until an
    # operator clears it (``clear_bundle_refusal``); the delivery's finding, not a setting
    bundles_refused_at: datetime | None = field(default=None, compare=False)
    bundles_refused_reason: str | None = field(default=None, compare=False)

    def pushes(self, kind: str) -> bool:
        return any(PUSH_KINDS[p] == kind for p in self.push)

    def missing_scopes(self, scopes: str | None = None) -> list[str]:
        """The scopes what it pushes and polls needs that ``scopes`` (default: those it asks for) lack."""
        return missing(needed(self.push, self.poll_referrals), self.scopes if scopes is None else scopes)

    def private_key(self) -> PrivateKey:
        try:
            if self.key_file:
                pem = Path(self.key_file).read_bytes()
            elif self.key_env and os.environ.get(self.key_env):
                pem = os.environ[self.key_env].encode()
            else:
                raise KeyUnavailable(f"connection {self.name}: no key file and no {self.key_env or 'key'} variable")
            return load_private_key(pem, self.kid)
        except OSError:
            raise KeyUnavailable(f"connection {self.name}: the key file cannot be read") from None
        except (ValueError, TypeError):
            raise KeyUnavailable(f"connection {self.name}: the key is not an RSA or EC private key in PEM") from None

    def public(self) -> dict[str, Any]:
        """As the admin API and the CLI show it (where the key is, never the key)."""
        return {
            "name": self.name,
            "base_url": self.base_url,
            "client_id": self.client_id,
            "key": self.key_file or (f"${self.key_env}" if self.key_env else None),
            "kid": self.kid,
            "alg": self.alg,
            "scopes": self.scopes,
            "profile": self.profile,
            "organization": self.organization,
            "push": list(self.push),
            "poll_referrals": self.poll_referrals,
            "poll_seconds": self.poll_seconds,
            "rate_per_second": self.rate_per_second,
            "task_owner": self.task_owner,
            "enabled": self.enabled,
            "poll_cursor": self.poll_cursor,
            "bundles_refused_at": self.bundles_refused_at.isoformat() if self.bundles_refused_at else None,
            "bundles_refused_reason": self.bundles_refused_reason,
            "missing_scopes": self.missing_scopes(),
        }


def _row(row: Any) -> EhrConnection:
    return EhrConnection(
        name=row.name,
        program_id=row.program_id,
        base_url=row.base_url,
        client_id=row.client_id,
        key_file=row.key_file,
        key_env=row.key_env,
        kid=row.kid,
        alg=row.alg,
        scopes=row.scopes,
        profile=row.profile,
        organization=row.organization,
        push=tuple(p for p in row.push.split(",") if p),
        poll_referrals=row.poll_referrals,
        poll_seconds=row.poll_seconds,
        rate_per_second=row.rate_per_second,
        enabled=row.enabled,
        task_owner=row.task_owner,
        poll_cursor=row.poll_cursor,
        polled_at=row.polled_at,
        updated_at=row.updated_at,
        bundles_refused_at=row.bundles_refused_at,
        bundles_refused_reason=row.bundles_refused_reason,
    )


def validated(fields: dict[str, Any]) -> dict[str, Any]:
    """The column values of a new connection, or a BadRequest naming what is wrong."""
    name = str(fields.get("name") or "")
    if not name or len(name) > 100 or not name.replace("-", "").replace("_", "").isalnum():
        raise BadRequest("name: letters, digits, - and _ (at most 100)")
    base_url = str(fields.get("base_url") or "").rstrip("/")
    if not base_url.startswith(("http://", "https://")):
        raise BadRequest("base_url must be the EHR's FHIR base, http(s)://...")
    if not fields.get("client_id"):
        raise BadRequest("client_id is required")
    if not (fields.get("key_file") or fields.get("key_env")):
        raise BadRequest("give the private key as a PEM file (key_file) or an environment variable (key_env)")
    alg = fields.get("alg") or "RS384"
    if alg not in ALGS:
        raise BadRequest(f"alg must be one of {', '.join(ALGS)}")
    profile = fields.get("profile") or "generic"
    if profile not in PROFILES:
        raise BadRequest(f"profile must be one of {', '.join(PROFILES)}")
    push = [p.strip() for p in (fields.get("push") or ["encounters", "notes"]) if p.strip()]
    unknown = [p for p in push if p not in PUSH_KINDS]
    if unknown:
        raise BadRequest(f"push: unknown {', '.join(unknown)} (use {', '.join(PUSH_KINDS)})")
    try:
        organization = normalize_organization(str(fields.get("organization") or ""))
    except ValueError:
        raise BadRequest("organization: the hospital's identifier as system|value, or its NPI") from None
    scopes = fields.get("scopes") or default_scopes(push, bool(fields.get("poll_referrals")))
    try:
        valid_registration(scopes)
    except ValueError as error:
        raise BadRequest(f"scopes: {error}") from None
    poll_seconds = int(fields.get("poll_seconds") or 3600)
    if not 900 <= poll_seconds <= 86_400:
        raise BadRequest("poll_seconds: between 900 (15 minutes) and 86400 (a day), as the Gravity IG asks")
    return {
        "name": name,
        "base_url": base_url,
        "client_id": str(fields["client_id"]),
        "key_file": fields.get("key_file"),
        "key_env": fields.get("key_env"),
        "kid": fields.get("kid"),
        "alg": alg,
        "scopes": scopes,
        "profile": profile,
        "organization": organization,
        "push": ",".join(push),
        "poll_referrals": bool(fields.get("poll_referrals")),
        "poll_seconds": poll_seconds,
        "rate_per_second": int(fields.get("rate_per_second") or 20),
        "task_owner": fields.get("task_owner") or "",
        "enabled": True,
    }


async def add(conn: AsyncConnection, program_id: str, fields: dict[str, Any], now: datetime) -> EhrConnection:
    values = {**validated(fields), "program_id": program_id, "created_at": now, "updated_at": now}
    try:
        async with conn.begin_nested():
            await conn.execute(insert(ehr_connections).values(**values))
    except IntegrityError:
        raise Conflict("a connection with that name exists already") from None
    found = await find(conn, values["name"])
    assert found is not None
    return found


async def find(conn: AsyncConnection, name: str) -> EhrConnection | None:
    row = (await conn.execute(select(ehr_connections).where(ehr_connections.c.name == name))).first()
    return _row(row) if row is not None else None


async def get(conn: AsyncConnection, name: str) -> EhrConnection:
    found = await find(conn, name)
    if found is None:
        raise NotFound("no EHR connection with that name")
    return found


async def list_all(
    conn: AsyncConnection, program_id: str | None = None, *, enabled: bool | None = None
) -> list[EhrConnection]:
    """The connections (of a program), oldest first; ``enabled=True``: only those switched on (what
    new changes are queued for)."""
    query = select(ehr_connections).order_by(ehr_connections.c.pk)
    if program_id is not None:
        query = query.where(ehr_connections.c.program_id == program_id)
    if enabled is not None:
        query = query.where(ehr_connections.c.enabled == enabled)
    return [_row(row) for row in await conn.execute(query)]


async def save_cursor(conn: AsyncConnection, name: str, cursor: str | None, now: datetime) -> None:
    await conn.execute(
        update(ehr_connections)
        .where(ehr_connections.c.name == name)
        .values(poll_cursor=cursor, polled_at=now)  # progress, not a change of settings: updated_at stays
    )


async def refuse_bundles(conn: AsyncConnection, name: str, reason: str, now: datetime) -> bool:
    """Remember that the EHR refused a transaction Bundle (the first refusal is kept); True when this
    is news. Not a change of settings: updated_at stays."""
    c = ehr_connections.c
    result = await conn.execute(
        update(ehr_connections)
        .where(c.name == name, c.bundles_refused_at.is_(None))
        .values(bundles_refused_at=now, bundles_refused_reason=reason[:500])
    )
    return bool(result.rowcount)


async def clear_bundle_refusal(conn: AsyncConnection, name: str, now: datetime) -> EhrConnection:
    """Try transaction Bundles again (the EHR was fixed, or the client's scopes widened)."""
    result = await conn.execute(
        update(ehr_connections)
        .where(ehr_connections.c.name == name)
        .values(bundles_refused_at=None, bundles_refused_reason=None, updated_at=now)
    )
    if result.rowcount == 0:
        raise NotFound("no EHR connection with that name")
    return await get(conn, name)


async def set_enabled(conn: AsyncConnection, name: str, enabled: bool, now: datetime) -> EhrConnection:
    result = await conn.execute(
        update(ehr_connections).where(ehr_connections.c.name == name).values(enabled=enabled, updated_at=now)
    )
    if result.rowcount == 0:
        raise NotFound("no EHR connection with that name")
    return await get(conn, name)


CHANGEABLE = frozenset(
    {
        "base_url",
        "client_id",
        "key_file",
        "key_env",
        "kid",
        "alg",
        "scopes",
        "profile",
        "organization",
        "push",
        "poll_referrals",
        "poll_seconds",
        "task_owner",
        "rate_per_second",
    }
)
"""What ``update`` may change: everything but the name (the queue and what the EHR holds are kept
under it) and whether it is enabled (``set_enabled``)."""


def changed(current: EhrConnection, changes: dict[str, Any]) -> dict[str, Any]:
    """The column values of ``current`` with ``changes`` applied and checked, or a RuleViolation (422)
    naming what is wrong. A new key_file replaces a key_env and the other way round; "" clears kid,
    task_owner and scopes (back to the default)."""
    unknown = sorted(set(changes) - CHANGEABLE)
    if unknown:
        raise RuleViolation(f"cannot change {', '.join(unknown)} (a connection keeps its name; use enable/disable)")
    fields: dict[str, Any] = {
        "name": current.name,
        **{key: getattr(current, key) for key in CHANGEABLE},
        "push": list(current.push),
    }
    if changes.get("key_file"):
        fields["key_env"] = None
    elif changes.get("key_env"):
        fields["key_file"] = None
    fields.update(changes)
    for key in ("key_file", "key_env", "kid"):
        fields[key] = fields[key] or None
    rate = fields["rate_per_second"]
    if not isinstance(rate, int) or not 1 <= rate <= 1000:
        raise RuleViolation("rate_per_second: between 1 and 1000")
    try:
        values = validated(fields)
    except BadRequest as error:
        raise RuleViolation(error.detail) from None
    del values["enabled"], values["name"]
    return values


async def change(conn: AsyncConnection, name: str, changes: dict[str, Any], now: datetime) -> EhrConnection:
    """Change a connection's settings (a new URL, a rotated key, other scopes, ...); the queue and
    the record of what the EHR holds stay as they are."""
    current = await get(conn, name)
    values = changed(current, changes)
    await conn.execute(update(ehr_connections).where(ehr_connections.c.name == name).values(**values, updated_at=now))
    return await get(conn, name)
