"""Search parameter values -> typed criteria (pure): modifiers, OR-lists and escapes, token, reference,
date and string values, and ``_include``/``_revinclude`` specs. Shared by the gateway's request parser
and the sandbox EHR's; each server passes the parameter table it serves."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Literal

from service.domain.errors import BadRequest
from service.fhir.search_params import ParamType, SearchParam

from .dates import DATE_PREFIXES, date_range
from .query import Criterion, DateValue, Include, Kind, ReferenceValue, StringValue, TokenValue, Value

ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
TYPED_REFERENCE = re.compile(r"^([A-Z][A-Za-z]{1,39})/([A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?$")
"""``Type/id`` (a ``/_history/v`` suffix allowed): groups 1 and 2 are the type and the id."""
_KINDS: dict[ParamType, Kind] = {
    ParamType.TOKEN: "token",
    ParamType.REFERENCE: "reference",
    ParamType.DATE: "date",
    ParamType.STRING: "string",
}


class UnsupportedModifier(Exception):
    """A modifier this server does not support on that parameter (lenient handling skips it)."""


def bad(detail: str, expression: str) -> BadRequest:
    """A 400 naming the offending parameter."""
    return BadRequest(detail, errors=[{"expression": expression}])


def split(value: str, separator: str) -> list[str]:
    """Split on unescaped separators, keeping escapes (``\\,`` ``\\|`` ``\\$`` ``\\\\``) for later."""
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for char in value:
        if escaped:
            current.append("\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if escaped:
        current.append("\\")
    parts.append("".join(current))
    return parts


def unescape(value: str) -> str:
    return re.sub(r"\\([\\,|$])", r"\1", value)


def date_value(name: str, raw: str) -> DateValue:
    """``[prefix]date``: the prefix (eq when none) and the range the date covers."""
    if raw[:2].isalpha() and raw[:2] not in DATE_PREFIXES:
        raise bad(f"the date prefix of {name} is not supported (use eq, ne, gt, lt, ge or le)", name)
    prefix, text = (raw[:2], raw[2:]) if raw[:2] in DATE_PREFIXES else ("eq", raw)
    bounds = date_range(text.replace(" ", "+"))  # an unencoded "+" offset arrives as a space
    if bounds is None:
        raise bad(f"{name} needs a FHIR date or dateTime (2026, 2026-01, 2026-01-05, 2026-01-05T10:00:00Z)", name)
    return DateValue(prefix, *bounds)


def token_value(name: str, raw: str) -> TokenValue:
    """``code``, ``system|code``, ``|code`` (no system) or ``system|`` (any code of it)."""
    parts = split(raw, "|")
    if len(parts) == 1:
        return TokenValue(code=unescape(parts[0]), system=None)
    if len(parts) != 2 or parts == ["", ""]:
        raise bad(f"{name} takes code, system|code, |code or system|", name)
    system, code = unescape(parts[0]), unescape(parts[1])
    if not system:
        return TokenValue(code=code, system=None, no_system=True)
    return TokenValue(code=code or None, system=system)


def reference_value(
    name: str, raw: str, target: str | None, base: str, targets: tuple[str, ...] = ()
) -> ReferenceValue:
    """``Type/id``, an absolute URL (this server's base stripped) or a bare id; ``name`` is the
    parameter as written (with its modifier), ``target`` the ``:Type`` modifier, ``targets`` the
    types the parameter expands a bare id to."""
    value = unescape(raw)
    if base and value.startswith(base + "/"):
        value = value[len(base) + 1 :]
    typed = TYPED_REFERENCE.match(value)
    if typed is not None:
        if target is not None and typed.group(1) != target:
            raise bad(f"{name} names a {target}, not another type", name)
        return ReferenceValue(references=(f"{typed.group(1)}/{typed.group(2)}",))
    if "://" in value and len(value) <= 300:
        return ReferenceValue(references=(value,))
    if not ID.match(value):
        raise bad(f"{name} takes Type/id or an id", name)
    if target is not None:
        return ReferenceValue(references=(f"{target}/{value}",))
    if targets:
        return ReferenceValue(references=tuple(f"{t}/{value}" for t in targets))
    return ReferenceValue(any_type_id=value)


def _kind(param: SearchParam) -> Kind:
    if param.name == "_id":
        return "_id"
    if param.name == "_lastUpdated":
        return "_lastUpdated"
    return _KINDS[param.type]


def _modifiers(kind: Kind, types: Collection[str]) -> set[str | None]:
    allowed: set[str | None] = {None, "missing"}
    if kind in ("token", "_id"):
        allowed.add("not")
    elif kind == "string":
        allowed |= {"exact", "contains"}
    elif kind == "reference":
        allowed |= set(types)
    return allowed


def criterion(
    param: SearchParam, modifier: str | None, raw: str, *, types: Collection[str], base: str = ""
) -> Criterion:
    """One occurrence of ``param[:modifier]=raw`` (a non-empty value). ``types``: the resource types
    the server serves (the ``:Type`` modifiers of a reference); ``base``: its FHIR base URL.
    Raises :class:`UnsupportedModifier`, or a 400 for a malformed value."""
    name = param.name
    shown = f"{name}:{modifier}" if modifier else name
    kind = _kind(param)
    if modifier not in _modifiers(kind, types):
        raise UnsupportedModifier(shown)
    if modifier == "missing":
        if raw not in ("true", "false"):
            raise bad(f"{shown} takes true or false", shown)
        return Criterion(name, kind, missing=raw == "true")
    values: list[Value] = []
    for part in split(raw, ","):
        if part == "":
            raise bad(f"{shown} has an empty value in its list", shown)
        if kind == "_id":
            values.append(unescape(part))
        elif kind in ("date", "_lastUpdated"):
            values.append(date_value(shown, unescape(part)))
        elif kind == "token":
            values.append(token_value(shown, part))
        elif kind == "string":
            mode: Literal["starts", "exact", "contains"] = (
                "exact" if modifier == "exact" else "contains" if modifier == "contains" else "starts"
            )
            values.append(StringValue(unescape(part), mode))
        else:
            values.append(reference_value(shown, part, modifier, base, param.targets))
    return Criterion(name, kind, tuple(values), negate=modifier == "not")


def include(
    resource_type: str, control: str, raw: str, params: Mapping[str, Mapping[str, SearchParam]], *, reverse: bool
) -> Include:
    """``Type:parameter[:TargetType]`` of ``_include`` (``Type`` is the searched type) or
    ``_revinclude``; ``params``: the parameters the server serves, per type."""
    parts = raw.split(":")
    if len(parts) not in (2, 3):
        raise bad(f"{control} takes Type:parameter or Type:parameter:TargetType", control)
    source, name = parts[0], parts[1]
    target = parts[2] if len(parts) == 3 else None
    if not reverse and source != resource_type:
        raise bad(f"{control} must start with the searched type ({resource_type})", control)
    found = params.get(source, {}).get(name)
    if found is None or found.type is not ParamType.REFERENCE:
        raise bad(f"{control}: {source[:40]}:{name[:40]} is not a reference parameter this server supports", control)
    if target is not None and target not in params:
        raise bad(f"{control}: this server does not serve {target[:40]} resources", control)
    return Include(source, name, target)
