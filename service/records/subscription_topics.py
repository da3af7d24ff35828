"""The subscription topics PeerLink serves and the filters a Subscription may set, from
``subscription_topics.toml`` (loaded and checked once), and whether a projected resource matches.

A topic's canonical is either fixed (the Gravity Task topic) or under the gateway's base URL
(``{base}/fhir/SubscriptionTopic/...``, PeerLink's own topics)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

DATA = Path(__file__).with_name("subscription_topics.toml")
PARAM_TYPES = frozenset({"token", "reference", "date"})
DATE_PREFIXES = ("ge", "gt", "le", "lt", "eq")


@dataclass(frozen=True)
class Param:
    name: str
    path: str
    type: str


@dataclass(frozen=True)
class Topic:
    key: str
    title: str
    resources: tuple[str, ...]
    filters: tuple[str, ...]
    require: dict[str, tuple[str, ...]]
    exclude: dict[str, tuple[str, ...]]
    canonical_fixed: str | None
    path: str | None

    def canonical(self, base_url: str) -> str:
        return self.canonical_fixed or f"{base_url.rstrip('/')}/fhir/{self.path}"


@dataclass(frozen=True)
class Filter:
    """One ``param=value[,value]`` of a backport-filter-criteria, on one resource type."""

    resource_type: str
    param: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Catalog:
    params: dict[str, Param]
    topics: dict[str, Topic]

    def by_canonical(self, canonical: str, base_url: str) -> Topic | None:
        return next((t for t in self.topics.values() if t.canonical(base_url) == canonical), None)


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{DATA.name}: {where} must be a list of strings")
    return tuple(value)


def parse(data: dict[str, Any]) -> Catalog:
    """Check the data file's content; ValueError names what is wrong."""
    for field in ("source", "why"):
        if not data.get(field):
            raise ValueError(f"{DATA.name}: {field} is required")
    params = {}
    for name, spec in data.get("params", {}).items():
        if spec.get("type") not in PARAM_TYPES or not spec.get("path"):
            raise ValueError(f"{DATA.name}: params.{name} needs a path and a type in {sorted(PARAM_TYPES)}")
        params[name] = Param(name, spec["path"], spec["type"])
    topics = {}
    for key, spec in data.get("topics", {}).items():
        if bool(spec.get("canonical")) == bool(spec.get("path")):
            raise ValueError(f"{DATA.name}: topics.{key} needs a canonical or a path (one of them)")
        if not spec.get("source") or not spec.get("why"):
            raise ValueError(f"{DATA.name}: topics.{key} needs source and why")
        filters = _strings(spec.get("filters", []), f"topics.{key}.filters")
        unknown = [f for f in filters if f not in params]
        require = {p: _strings(v, f"topics.{key}.require") for p, v in spec.get("require", {}).items()}
        exclude = {p: _strings(v, f"topics.{key}.exclude") for p, v in spec.get("exclude", {}).items()}
        unknown += [p for p in (*require, *exclude) if p not in params]
        if unknown:
            raise ValueError(f"{DATA.name}: topics.{key} uses unknown parameters {unknown}")
        topics[key] = Topic(
            key,
            spec.get("title", key),
            _strings(spec.get("resources"), f"topics.{key}.resources"),
            filters,
            require,
            exclude,
            spec.get("canonical"),
            spec.get("path"),
        )
    return Catalog(params, topics)


@cache
def catalog() -> Catalog:
    return parse(tomllib.loads(DATA.read_text(encoding="utf-8")))


def parse_criteria(topic: Topic, criteria: str) -> list[Filter]:
    """``Type?param=value&...`` of a backport-filter-criteria; ValueError says what is wrong."""
    resource_type, mark, query = criteria.partition("?")
    if not mark or resource_type not in topic.resources:
        raise ValueError(f"a filter must read {'|'.join(topic.resources)}?param=value for this topic")
    pairs = parse_qsl(query, keep_blank_values=True)
    if not pairs:
        raise ValueError("a filter needs at least one param=value")
    found = []
    for param, value in pairs:
        if param not in topic.filters:
            raise ValueError(f"the topic has no filter {param[:40]} (it has: {', '.join(topic.filters)})")
        values = tuple(v.strip() for v in value.split(",") if v.strip())
        if not values:
            raise ValueError(f"the filter {param} has no value")
        if catalog().params[param].type == "date":
            for one in values:
                _date_bound(one)
        found.append(Filter(resource_type, param, values))
    return found


def _date_bound(value: str) -> tuple[str, datetime]:
    prefix = value[:2] if value[:2] in DATE_PREFIXES else "eq"
    text = value[2:] if value[:2] in DATE_PREFIXES else value
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{value[:40]} is not a date or instant (e.g. ge2026-01-01T00:00:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.now().astimezone().tzinfo)
    return prefix, moment


def _values_at(resource: dict[str, Any], path: str) -> list[Any]:
    found: list[Any] = [resource]
    for step in path.split("."):
        nxt: list[Any] = []
        for node in found:
            value = node.get(step) if isinstance(node, dict) else None
            nxt.extend(value if isinstance(value, list) else [value] if value is not None else [])
        found = nxt
    return found


def _tokens(value: Any) -> set[str]:
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        codings = value.get("coding") or ([value] if "code" in value or "value" in value else [])
        out = set()
        for c in codings:
            code = c.get("code") or c.get("value")
            if code:
                out |= {code, f"{c.get('system', '')}|{code}"}
        return out
    return set()


def _matches_one(param: Param, wanted: tuple[str, ...], resource: dict[str, Any]) -> bool:
    found = _values_at(resource, param.path)
    if param.type == "token":
        tokens = set().union(*(_tokens(v) for v in found)) if found else set()
        return any(w in tokens for w in wanted)
    if param.type == "reference":
        refs = [v.get("reference", "") for v in found if isinstance(v, dict)]
        return any(r == w or r.endswith("/" + w) for r in refs for w in wanted)
    moments = [datetime.fromisoformat(v.replace("Z", "+00:00")) for v in found if isinstance(v, str)]
    for w in wanted:
        prefix, bound = _date_bound(w)
        ops = {"ge": bound.__le__, "gt": bound.__lt__, "le": bound.__ge__, "lt": bound.__gt__, "eq": bound.__eq__}
        if any(ops[prefix](m) for m in moments):
            return True
    return False


def matches(topic: Topic, filters: list[Filter], resource: dict[str, Any]) -> bool:
    """The topic's trigger holds for ``resource`` and so does every filter of its type (filters of the
    topic's other resource types do not apply to it)."""
    if resource.get("resourceType") not in topic.resources:
        return False
    params = catalog().params
    if any(not _matches_one(params[p], v, resource) for p, v in topic.require.items()):
        return False
    if any(_matches_one(params[p], v, resource) for p, v in topic.exclude.items()):
        return False
    return all(
        _matches_one(params[f.param], f.values, resource)
        for f in filters
        if f.resource_type == resource["resourceType"]
    )
