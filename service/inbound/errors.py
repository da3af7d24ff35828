"""How inbound FHIR is refused: errors that name the element as it was sent."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from mappings.context import MappingError
from service.domain.errors import BadRequest, InvalidResource, RuleViolation


class IdentifierClash(Exception):
    """Another transaction claimed the same external identifier first: run the work again."""


def invalid(element: str, reason: str) -> InvalidResource:
    return InvalidResource(f"{element}: {reason}", errors=[{"expression": element}])


def refused(element: str, reason: str) -> RuleViolation:
    return RuleViolation(f"{element}: {reason}", errors=[{"expression": element}])


def bad_request(element: str, reason: str) -> BadRequest:
    return BadRequest(f"{element}: {reason}", errors=[{"expression": element}])


@dataclass(frozen=True)
class Where:
    """Where each resource of a request sits, so that an error names the element as it was sent:
    ``ServiceRequest.subject`` inside a transaction becomes ``Bundle.entry[1].resource.subject``."""

    roots: Mapping[str, str] = field(default_factory=dict)

    def __call__(self, element: str) -> str:
        for resource_type, root in self.roots.items():
            if element == resource_type:
                return root
            if element.startswith((f"{resource_type}.", f"{resource_type}[", f"{resource_type} ")):
                return root + element[len(resource_type) :]
        return element

    def with_(self, resource_type: str, root: str) -> Where:
        return Where({**self.roots, resource_type: root})


PLAIN = Where()


def from_mapping(exc: MappingError, where: Where, resource_type: str) -> InvalidResource:
    """A mapping's refusal as an invalid-resource error at the element as it was sent."""
    element = exc.element if exc.element != "resourceType" else f"{resource_type}.resourceType"
    return invalid(where(element), exc.reason)
