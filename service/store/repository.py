"""One repository for every versioned record kind: get, insert, update (optimistic), keyset list."""

from __future__ import annotations

import base64
import binascii
import builtins
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy import Table, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from service.domain.common import VersionMeta
from service.domain.errors import BadRequest, Conflict, NotFound, PreconditionFailed

from .tables import record_versions

R = TypeVar("R", bound=VersionMeta)
MAX_PK = 2**63  # keyset values are BIGINT
META_FIELDS = frozenset({"id", "program_id", "version", "created_at", "updated_at"})


@dataclass(frozen=True)
class StoredKind(Generic[R]):
    """How one record kind is stored: its table, its model, the content fields copied to columns."""

    name: str
    label: str
    table: Table
    model: type[R]
    columns: tuple[str, ...] = ()
    tenant: bool = True
    content_fields: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        fields = set(self.model.model_fields) - META_FIELDS
        object.__setattr__(self, "content_fields", frozenset(fields))


@dataclass(frozen=True)
class Page(Generic[R]):
    items: list[R]
    next_cursor: str | None


@dataclass(frozen=True)
class Range:
    low: Any | None = None
    high: Any | None = None


def encode_cursor(pk: int) -> str:
    return base64.urlsafe_b64encode(f"pk:{pk}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, number = raw.partition(":")
        pk = int(number)
        if prefix != "pk" or not 0 <= pk < MAX_PK:
            raise ValueError(prefix)
        return pk
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadRequest("the cursor is not one this server issued") from None


def new_id() -> str:
    return str(uuid.uuid4())


class RecordRepository(Generic[R]):
    def __init__(self, kind: StoredKind[R]) -> None:
        self.kind = kind
        self.table = kind.table

    def _content(self, content: BaseModel | Mapping[str, Any]) -> dict[str, Any]:
        data = content.model_dump(mode="json") if isinstance(content, BaseModel) else dict(content)
        return {k: v for k, v in data.items() if k in self.kind.content_fields}

    def _record(self, row: Any) -> R:
        meta = {
            "id": row.id,
            "version": row.version,
            "created_at": row.created_at,
            "updated_at": row.updated_at,
        }
        if self.kind.tenant:
            meta["program_id"] = row.program_id
        return self.kind.model.model_validate({**row.data, **meta})

    def _columns(self, record: R) -> dict[str, Any]:
        return {name: getattr(record, name) for name in self.kind.columns}

    async def find(self, conn: AsyncConnection, program_id: str | None, record_id: str) -> R | None:
        query = select(self.table).where(self.table.c.id == record_id)
        if self.kind.tenant:
            query = query.where(self.table.c.program_id == program_id)
        row = (await conn.execute(query)).first()
        return None if row is None else self._record(row)

    async def get(self, conn: AsyncConnection, program_id: str | None, record_id: str) -> R:
        record = await self.find(conn, program_id, record_id)
        if record is None:
            raise NotFound(f"no {self.kind.label} with that id in this program")
        return record

    async def insert(
        self,
        conn: AsyncConnection,
        program_id: str | None,
        content: BaseModel | Mapping[str, Any],
        now: datetime,
    ) -> R:
        data = self._content(content)
        meta: dict[str, Any] = {"id": new_id(), "version": 1, "created_at": now, "updated_at": now}
        if self.kind.tenant:
            meta["program_id"] = program_id
        record = self.kind.model.model_validate({**data, **meta})
        values = {**meta, **self._columns(record), "data": data}
        try:
            await conn.execute(insert(self.table).values(**values))
        except IntegrityError:
            raise Conflict(f"the {self.kind.label} clashes with an existing record") from None
        await self._keep_version(conn, record, data, now)
        return record

    async def update(
        self,
        conn: AsyncConnection,
        current: R,
        content: BaseModel | Mapping[str, Any],
        now: datetime,
        *,
        expected_version: int | None = None,
    ) -> R:
        if expected_version is not None and expected_version != current.version:
            raise PreconditionFailed(
                f"the {self.kind.label} is at version {current.version}, not {expected_version}; read it again"
            )
        data = self._content(content)
        meta = current.model_dump(include=set(META_FIELDS))
        meta.update(version=current.version + 1, updated_at=now)
        record = self.kind.model.model_validate({**data, **meta})
        result = await conn.execute(
            update(self.table)
            .where(self.table.c.id == current.id, self.table.c.version == current.version)
            .values(version=record.version, updated_at=now, data=data, **self._columns(record))
        )
        if result.rowcount != 1:
            raise Conflict(f"the {self.kind.label} was changed by someone else meanwhile; read it again")
        await self._keep_version(conn, record, data, now)
        return record

    async def _keep_version(self, conn: AsyncConnection, record: R, data: dict[str, Any], now: datetime) -> None:
        await conn.execute(
            insert(record_versions).values(
                kind=self.kind.name,
                record_id=record.id,
                program_id=getattr(record, "program_id", None),
                version=record.version,
                recorded_at=now,
                data=data,
            )
        )

    async def versions(self, conn: AsyncConnection, record: R) -> list[dict[str, Any]]:
        rows = await conn.execute(
            select(record_versions.c.version, record_versions.c.recorded_at, record_versions.c.data)
            .where(record_versions.c.kind == self.kind.name, record_versions.c.record_id == record.id)
            .order_by(record_versions.c.version)
        )
        return [dict(row._mapping) for row in rows]

    async def list(
        self,
        conn: AsyncConnection,
        program_id: str | None,
        *,
        equals: Mapping[str, Any] | None = None,
        ranges: Mapping[str, Range] | None = None,
        limit: int,
        cursor: str | None = None,
    ) -> Page[R]:
        c = self.table.c
        query = select(self.table).order_by(c.pk).limit(limit + 1)
        if self.kind.tenant:
            query = query.where(c.program_id == program_id)
        for name, value in (equals or {}).items():
            if value is not None:
                query = query.where(c[name] == value)
        for name, bounds in (ranges or {}).items():
            if bounds.low is not None:
                query = query.where(c[name] >= bounds.low)
            if bounds.high is not None:
                query = query.where(c[name] < bounds.high)
        if cursor is not None:
            query = query.where(c.pk > decode_cursor(cursor))
        rows: Sequence[Any] = (await conn.execute(query)).all()
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(
            items=[self._record(row) for row in rows],
            next_cursor=encode_cursor(rows[-1].pk) if more else None,
        )

    async def find_all(
        self, conn: AsyncConnection, program_id: str, column: str, values: Sequence[Any], *, chunk: int = 400
    ) -> builtins.list[R]:
        """Every record whose indexed ``column`` is one of ``values`` (queried ``chunk`` values at a time)."""
        c = self.table.c
        found: builtins.list[R] = []
        for i in range(0, len(values), chunk):
            query = select(self.table).where(c.program_id == program_id, c[column].in_(values[i : i + chunk]))
            found += [self._record(row) for row in (await conn.execute(query.order_by(c.pk))).all()]
        return found
