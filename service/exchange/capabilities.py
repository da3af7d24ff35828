"""What an EHR accepts, read from its CapabilityStatement: per resource type the write it takes
(update-as-create PUT, else create POST, else none) and whether it takes transaction Bundles."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Capabilities:
    interactions: dict[str, frozenset[str]]
    conditional_create: dict[str, bool]
    transaction: bool

    @classmethod
    def of(cls, statement: dict[str, Any]) -> Capabilities:
        interactions: dict[str, frozenset[str]] = {}
        conditional: dict[str, bool] = {}
        transaction = False
        for rest in statement.get("rest", []):
            transaction = transaction or any(i.get("code") == "transaction" for i in rest.get("interaction", []))
            for resource in rest.get("resource", []):
                codes = frozenset(i.get("code") for i in resource.get("interaction", []))
                interactions[resource.get("type", "")] = codes
                conditional[resource.get("type", "")] = bool(resource.get("conditionalCreate"))
        return cls(interactions, conditional, transaction)

    def method(self, resource_type: str) -> str | None:
        codes = self.interactions.get(resource_type, frozenset())
        if "update" in codes:
            return "PUT"
        if "create" in codes:
            return "POST"
        return None
