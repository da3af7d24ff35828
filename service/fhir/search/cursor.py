"""The keyset cursor of a search's next link: the sort it belongs to, the last entry's sort key and
pk, the ``fhir_versions`` snapshot paging started at and the first page's total; opaque to clients,
checked when it returns."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime

import orjson

from .query import Cursor, Sort
from .values import bad

MAX_LENGTH = 400
_MAX_PK = 2**63


def encode_cursor(cursor: Cursor) -> str:
    payload = {
        "s": cursor.sort,
        "k": cursor.key.isoformat() if cursor.key else None,
        "p": cursor.pk,
        "n": cursor.snapshot,
    }
    if cursor.total is not None:
        payload["t"] = cursor.total
    return base64.urlsafe_b64encode(orjson.dumps(payload)).decode().rstrip("=")


def decode_cursor(raw: str, sort: Sort) -> Cursor:
    """A cursor this server issued for this sort, or a 400."""
    error = bad("_cursor is not one this server issued for this search", "_cursor")
    if len(raw) > MAX_LENGTH:
        raise error
    try:
        payload = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (ValueError, binascii.Error):
        raise error from None
    if not isinstance(payload, dict) or set(payload) - {"t"} != {"s", "k", "p", "n"} or payload["s"] != sort.text:
        raise error
    pk, snapshot, key, total = payload["p"], payload["n"], payload["k"], payload.get("t")
    if type(pk) is not int or type(snapshot) is not int or not (0 <= pk < _MAX_PK and 0 <= snapshot < _MAX_PK):
        raise error
    if total is not None and (type(total) is not int or not 0 <= total < _MAX_PK):
        raise error
    if sort.key is None:
        if key is not None:
            raise error
        return Cursor(sort.text, None, pk, snapshot, total)
    if not isinstance(key, str):
        raise error
    try:
        moment = datetime.fromisoformat(key)
    except ValueError:
        raise error from None
    if moment.tzinfo is None:
        raise error
    return Cursor(sort.text, moment.astimezone(UTC), pk, snapshot, total)
