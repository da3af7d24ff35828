"""SMART scopes for backend services (https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html).

v2 (``system/Encounter.rs``, ``system/*.cruds``) and v1 (``system/Patient.read``, ``.write``, ``.*``)
are both understood; only ``system/`` scopes mean anything to a backend client. Granular scopes
with a query (``system/Observation.rs?category=...``) are not supported and are never granted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

ADMIN_SCOPE = "peerlink.admin"
"""Manage clients, keys and the audit log (not a SMART scope; granted only when registered)."""

ORDER = "cruds"
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}
_SCOPE = re.compile(r"^system/(\*|[A-Z][A-Za-z]{1,63})\.(read|write|\*|c?r?u?d?s?)$")


class Interaction(StrEnum):
    CREATE = "c"
    READ = "r"
    UPDATE = "u"
    DELETE = "d"
    SEARCH = "s"


@dataclass(frozen=True)
class ResourceScope:
    resource_type: str
    """A FHIR type, or ``*``."""
    permissions: str
    """Letters of ``cruds``, in that order."""

    @property
    def text(self) -> str:
        return f"system/{self.resource_type}.{self.permissions}"


def _ordered(letters: Iterable[str]) -> str:
    wanted = set(letters)
    return "".join(letter for letter in ORDER if letter in wanted)


def parse(text: str) -> ResourceScope | None:
    """A resource scope, or None for anything else (including an empty v2 permission set)."""
    match = _SCOPE.match(text)
    if match is None or not match.group(2):
        return None
    permissions = _V1.get(match.group(2), match.group(2))
    return ResourceScope(match.group(1), permissions)


@dataclass(frozen=True)
class Permissions:
    """What a token's scopes allow, per resource type."""

    by_type: dict[str, str]
    admin: bool

    @classmethod
    def of(cls, scopes: Iterable[str]) -> Permissions:
        by_type: dict[str, set[str]] = {}
        admin = False
        for text in scopes:
            if text == ADMIN_SCOPE:
                admin = True
                continue
            scope = parse(text)
            if scope is not None:
                by_type.setdefault(scope.resource_type, set()).update(scope.permissions)
        return cls({t: _ordered(p) for t, p in by_type.items()}, admin)

    def allows(self, resource_type: str, interaction: Interaction) -> bool:
        return interaction.value in self.by_type.get(resource_type, "") or interaction.value in self.by_type.get(
            "*", ""
        )

    def for_type(self, resource_type: str) -> str:
        return _ordered(self.by_type.get(resource_type, "") + self.by_type.get("*", ""))


def split(scopes: str | None) -> list[str]:
    return [s for s in (scopes or "").split() if s]


def grantable(asked: str | None, allowed: str) -> list[str]:
    """The intersection of what a client asks for and what its registration allows. Nothing asked:
    everything allowed. A scope granted only in part comes back narrowed, in v2 syntax."""
    allowed_scopes = split(allowed)
    if not split(asked):
        return allowed_scopes
    permitted = Permissions.of(allowed_scopes)
    granted: list[str] = []
    for text in split(asked):
        if text == ADMIN_SCOPE:
            if permitted.admin:
                granted.append(text)
            continue
        scope = parse(text)
        if scope is None:
            continue
        if scope.resource_type == "*":  # a wildcard narrows to the wildcard's part plus each named type's
            wildcard = _ordered(set(scope.permissions) & set(permitted.by_type.get("*", "")))
            if wildcard:
                granted.append(text if wildcard == scope.permissions else f"system/*.{wildcard}")
            for resource_type, letters in permitted.by_type.items():
                extra = _ordered((set(scope.permissions) & set(letters)) - set(wildcard))
                if resource_type != "*" and extra:
                    granted.append(f"system/{resource_type}.{extra}")
            continue
        letters = _ordered(set(scope.permissions) & set(permitted.for_type(scope.resource_type)))
        if letters:
            granted.append(text if letters == scope.permissions else f"system/{scope.resource_type}.{letters}")
    return list(dict.fromkeys(granted))


def valid_registration(scopes: str) -> list[str]:
    """Scopes a client may be registered with; anything else is named in the error."""
    bad = [s for s in split(scopes) if s != ADMIN_SCOPE and parse(s) is None]
    if bad:
        raise ValueError(f"not a supported scope: {' '.join(bad)} (use system/Type.cruds, system/*.read, ...)")
    return split(scopes)
