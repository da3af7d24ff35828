"""FHIR search (https://hl7.org/fhir/R4/search.html) over the projection.

A request's parameters are parsed once into a typed :class:`SearchQuery` (:mod:`.parsing`, with the
parameter values and date ranges of :mod:`.values` and :mod:`.dates`, which the sandbox EHR shares);
:func:`run` (:mod:`.execute`) turns it into SQL (:mod:`.sql`): every criterion is an EXISTS on
``fhir_search`` correlated to ``fhir_resources.pk`` (or a condition on the resource row for ``_id``
and ``_lastUpdated``), the page is keyset-paged on the sort key and pk (:mod:`.cursor`), and the
Bundle is spliced from the stored bytes (:mod:`.searchset`).

Paging stays stable while records are written: the keyset skips nothing that sorts after the last
entry and never returns it twice; for ``_lastUpdated`` the cursor also pins a snapshot of
``fhir_versions`` so a resource updated after paging started keeps the place it had (the key comes
from its version current at the snapshot).
"""

from service.fhir.search_params import REFERENCE_TARGETS

from .cursor import decode_cursor, encode_cursor
from .dates import date_range
from .execute import run
from .parsing import DATE_SORT, parse
from .query import (
    DEFAULT_COUNT,
    MAX_COUNT,
    Criterion,
    Cursor,
    DateValue,
    Found,
    Include,
    Kind,
    ReferenceValue,
    SearchQuery,
    SearchResult,
    Sort,
    StringValue,
    TokenValue,
    Value,
)
from .searchset import SUBSETTED, bundle
from .values import UnsupportedModifier

__all__ = [
    "DATE_SORT",
    "DEFAULT_COUNT",
    "MAX_COUNT",
    "REFERENCE_TARGETS",
    "SUBSETTED",
    "Criterion",
    "Cursor",
    "DateValue",
    "Found",
    "Include",
    "Kind",
    "ReferenceValue",
    "SearchQuery",
    "SearchResult",
    "Sort",
    "StringValue",
    "TokenValue",
    "UnsupportedModifier",
    "Value",
    "bundle",
    "date_range",
    "decode_cursor",
    "encode_cursor",
    "parse",
    "run",
]
