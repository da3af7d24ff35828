"""PostgreSQL: a page planned once and its one ``_include`` or ``_revinclude``, in one statement.

A participant's notes with the encounters they document (``DocumentReference?patient=…&_include=
DocumentReference:encounter``), or a participant's encounters with the notes about them
(``Encounter?patient=…&_revinclude=DocumentReference:encounter``), is how an EHR asks for a chart's
pieces together. Its page is driven by the participant (planned once, :func:`.sql.driving`), and the
included resources were a second statement, a second round trip on a second session. Here the page's
statement is a common table expression and the included resources are read from its rows in the same
statement: one round trip, one plan made once. The included resources are those of the page's first
``returned`` rows (the page's statement reads one more, to know whether a next page exists), inside the
same boundary, each once and none of the matches, in pk order: what :func:`.includes.included` finds
(``tests/api/test_search_combined.py`` compares them, page by page, for every searcher of the boundary
tests).

Rows of the combined statement carry ``part``: 0 for the page's rows (in the page's order, ``n``), 1 for
the included resources (ordered by ``n``, their pk)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import Integer, bindparam, func, literal_column, null, select, union_all

from service.store.tables import fhir_search

from .includes import CANONICAL_TYPES, COLUMNS, KEPT_TARGET_SHAPES, one_target, pointed_at, pointing
from .paging import PAGE_PART
from .query import SearchQuery
from .sql import R

INCLUDED = 1
"""The ``part`` of a combined statement's included rows (the page's own: ``paging.PAGE_PART``)."""


class Together(NamedTuple):
    """The one include a page's statement reads with it."""

    reverse: bool
    """``_revinclude``: the resources pointing at the matches; else those the matches point at."""
    source_type: str
    param: str
    target: str
    """The type the parameter points at: an ``_include``'s one target type (by ``Type/id``), the searched
    type for a ``_revinclude``."""


def together(query: SearchQuery) -> Together | None:
    """The query's include, when it is its only one and one statement can read it: an ``_include`` of a
    parameter with one target type, referred to by ``Type/id`` (:func:`.includes.one_target`), or a
    ``_revinclude`` of the searched type, which is not a type referred to by canonical URL."""
    if len(query.includes) + len(query.revincludes) != 1:
        return None
    if query.includes:
        include = query.includes[0]
        target = one_target(include)
        return None if target is None else Together(False, include.source_type, include.param, target)
    include = query.revincludes[0]
    if include.target_type not in (None, query.resource_type) or query.resource_type in CANONICAL_TYPES:
        return None
    return Together(True, include.source_type, include.param, query.resource_type)


def parameters(query: SearchQuery, include: Together) -> dict[str, Any]:
    """The include's values beside the page's (the program and the boundary's are the page's)."""
    return {"source_type": include.source_type, "param": include.param, "returned": query.count}


@lru_cache(maxsize=KEPT_TARGET_SHAPES * 4)  # page statements are kept (execute._kept); includes are few
def statement(page_statement: Any, keyed: bool, descending: bool, include: Together, bounded: bool) -> Any:
    """The page's statement (rows ``pk``, ``resource_type``, ``resource_id``, ``body``, ``patient_id``,
    ``snapshot``, and ``k``/``total`` when it has them) with the included resources beside its rows."""
    page = page_statement.cte("page")
    keys = [page.c.k, page.c.pk] if keyed else [page.c.pk]
    order = [key.desc() if descending else key.asc() for key in keys]
    returned = select(page.c.pk).order_by(*order).limit(bindparam("returned", type_=Integer()))
    if include.reverse:
        references = select(page.c.resource_type + "/" + page.c.resource_id).where(page.c.pk.in_(returned))
        conditions = pointing(include.source_type, bounded, True, references)
    else:
        conditions = pointed_at(include.target, bounded, fhir_search.c.resource_pk.in_(returned))
    extra = [column.key for column in page.c if column.key not in {c.key for c in COLUMNS}]
    matches = select(
        literal_column(str(PAGE_PART), Integer()).label("part"),
        func.row_number().over(order_by=order).label("n"),
        *(page.c[c.key] for c in COLUMNS),
        *(page.c[key] for key in extra),
    )
    included = select(
        literal_column(str(INCLUDED), Integer()),
        R.pk,
        *COLUMNS,
        *(null() for _ in extra),
    ).where(*conditions)
    both = union_all(matches, included)
    return both.order_by(both.selected_columns.part, both.selected_columns.n)
