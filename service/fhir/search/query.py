"""The typed search query: what a request's parameters mean once parsed, and what a search found.

Pure data. The gateway compiles it to SQL; the sandbox EHR evaluates its criteria over its own store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NamedTuple

DEFAULT_COUNT = 50
MAX_COUNT = 500


@dataclass(frozen=True)
class TokenValue:
    code: str | None
    """None: any code of ``system``."""
    system: str | None
    """None: any system, unless ``no_system``."""
    no_system: bool = False


@dataclass(frozen=True)
class ReferenceValue:
    references: tuple[str, ...] = ()
    """Exact index tokens (``Type/id`` or an absolute URL)."""
    any_type_id: str | None = None
    """A bare id matched against a reference of any type."""


@dataclass(frozen=True)
class DateValue:
    prefix: str
    low: datetime
    high: datetime
    """The value's precision as a half-open range [low, high)."""


@dataclass(frozen=True)
class StringValue:
    text: str
    """As requested (unescaped; case is the evaluator's business)."""
    mode: Literal["starts", "exact", "contains"]


Value = TokenValue | ReferenceValue | DateValue | StringValue | str
Kind = Literal["token", "reference", "date", "string", "_id", "_lastUpdated"]


@dataclass(frozen=True)
class Criterion:
    """One occurrence of a parameter: its values are OR-ed; occurrences are AND-ed."""

    param: str
    kind: Kind
    values: tuple[Value, ...] = ()
    negate: bool = False
    missing: bool | None = None


@dataclass(frozen=True)
class Include:
    source_type: str
    param: str
    target_type: str | None = None


@dataclass(frozen=True)
class Sort:
    text: str
    """As requested (``-date``), or ``""`` for the default order (pk); carried in the cursor."""
    key: str | None = None
    """``_lastUpdated``, a date parameter name, or None for pk order."""
    descending: bool = False


@dataclass(frozen=True)
class Cursor:
    sort: str
    key: datetime | None
    pk: int
    snapshot: int
    total: int | None = None
    """The first page's total: a later page repeats it instead of counting again (as a search kept
    by the server would); None: not counted (``_total=none``)."""


@dataclass(frozen=True)
class After:
    """Where a later page starts (a :class:`Cursor`'s key, pk and snapshot): bind parameters standing
    for them in a statement (SQL) kept for every later page of its shape."""

    key: Any
    pk: Any
    snapshot: Any


@dataclass(frozen=True)
class SearchQuery:
    resource_type: str
    criteria: tuple[Criterion, ...] = ()
    count: int = DEFAULT_COUNT
    sort: Sort = Sort("")
    summary_count: bool = False
    elements: tuple[str, ...] | None = None
    includes: tuple[Include, ...] = ()
    revincludes: tuple[Include, ...] = ()
    cursor: Cursor | None = None
    total: bool = True
    ignored: tuple[str, ...] = ()
    """Unknown parameters skipped under ``Prefer: handling=lenient``."""
    link_params: tuple[tuple[str, str], ...] = ()
    """The parameters that took effect, for the self and next links (``_cursor`` excluded)."""


class Found(NamedTuple):
    """A search's resource (a tuple: twenty of them a page are made per search, profiled)."""

    pk: int
    resource_type: str
    resource_id: str
    body: bytes
    patient_id: str | None = None
    """The Patient the resource is about (for the audit record of whose data a search returned)."""


@dataclass(frozen=True)
class SearchResult:
    total: int | None
    matches: list[Found]
    included: list[Found]
    next_cursor: str | None
