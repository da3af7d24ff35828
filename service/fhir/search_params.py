"""The search parameters PeerLink supports, per resource type: one table that drives the index
written with every resource, the search parser, and the CapabilityStatement."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time
from enum import StrEnum
from typing import Any


class ParamType(StrEnum):
    TOKEN = "token"  # noqa: S105 - a FHIR search parameter type
    REFERENCE = "reference"
    DATE = "date"
    STRING = "string"


@dataclass(frozen=True)
class SearchParam:
    name: str
    type: ParamType
    paths: tuple[str, ...]
    """Dotted paths into the resource; lists are walked. A token path ends at a CodeableConcept,
    Coding, Identifier or code; a reference path at a Reference."""
    documentation: str = ""


def _walk(node: Any, parts: list[str]) -> Iterator[Any]:
    if isinstance(node, list):
        for item in node:
            yield from _walk(item, parts)
        return
    if not parts:
        yield node
        return
    if isinstance(node, dict) and parts[0] in node:
        yield from _walk(node[parts[0]], parts[1:])


def _tokens(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, bool):
        yield "true" if value else "false"
    elif isinstance(value, dict):
        if "coding" in value:
            for coding in value["coding"] or []:
                yield from _tokens(coding)
        elif "code" in value:
            yield str(value["code"])
            if value.get("system"):
                yield f"{value['system']}|{value['code']}"
        elif "value" in value:
            yield str(value["value"])
            if value.get("system"):
                yield f"{value['system']}|{value['value']}"


def to_moment(value: str) -> datetime | None:
    """A FHIR date or dateTime as a UTC instant (a date is taken at its start, in UTC)."""
    try:
        if len(value) == 4:
            return datetime(int(value), 1, 1, tzinfo=UTC)
        if len(value) == 7:
            return datetime(int(value[:4]), int(value[5:7]), 1, tzinfo=UTC)
        if len(value) == 10:
            return datetime.combine(datetime.fromisoformat(value).date(), time(), tzinfo=UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def index_values(param: SearchParam, resource: dict[str, Any]) -> list[tuple[str | None, datetime | None]]:
    """The (token, moment) rows one parameter contributes for one resource."""
    rows: set[tuple[str | None, datetime | None]] = set()
    for path in param.paths:
        for value in _walk(resource, path.split(".")):
            if param.type is ParamType.DATE and isinstance(value, str):
                moment = to_moment(value)
                if moment is not None:
                    rows.add((None, moment))
            elif param.type is ParamType.REFERENCE and isinstance(value, dict):
                if isinstance(value.get("reference"), str):
                    rows.add((value["reference"], None))
            elif param.type is ParamType.STRING and isinstance(value, str):
                rows.add((value.lower()[:300], None))
            elif param.type is ParamType.TOKEN:
                rows.update((token[:300], None) for token in _tokens(value))
    return sorted(rows, key=lambda row: (row[0] or "", row[1] or datetime.min.replace(tzinfo=UTC)))


def _p(name: str, kind: ParamType, *paths: str, doc: str = "") -> SearchParam:
    return SearchParam(name, kind, paths, doc)


T, R, D, S = ParamType.TOKEN, ParamType.REFERENCE, ParamType.DATE, ParamType.STRING
IDENTIFIER = _p("identifier", T, "identifier", doc="system|value or value")

SEARCH_PARAMS: dict[str, dict[str, SearchParam]] = {
    resource_type: {p.name: p for p in params}
    for resource_type, params in {
        "Patient": [
            IDENTIFIER,
            _p("name", S, "name.family", "name.given", "name.text"),
            _p("family", S, "name.family"),
            _p("given", S, "name.given"),
            _p("birthdate", D, "birthDate"),
            _p("gender", T, "gender"),
        ],
        "Practitioner": [IDENTIFIER, _p("name", S, "name.family", "name.given", "name.text")],
        "PractitionerRole": [
            IDENTIFIER,
            _p("practitioner", R, "practitioner"),
            _p("organization", R, "organization"),
            _p("specialty", T, "specialty"),
        ],
        "Organization": [IDENTIFIER, _p("name", S, "name")],
        "Encounter": [
            IDENTIFIER,
            _p("patient", R, "subject"),
            _p("subject", R, "subject"),
            _p("date", D, "period.start"),
            _p("status", T, "status"),
            _p("type", T, "type"),
            _p("class", T, "class"),
            _p("participant", R, "participant.individual"),
        ],
        "DocumentReference": [
            IDENTIFIER,
            _p("patient", R, "subject"),
            _p("subject", R, "subject"),
            _p("encounter", R, "context.encounter"),
            _p("date", D, "date"),
            _p("status", T, "status"),
            _p("type", T, "type"),
            _p("category", T, "category"),
            _p("author", R, "author"),
        ],
        "CareTeam": [
            IDENTIFIER,
            _p("patient", R, "subject"),
            _p("subject", R, "subject"),
            _p("status", T, "status"),
            _p("category", T, "category"),
            _p("participant", R, "participant.member"),
        ],
        "ServiceRequest": [
            IDENTIFIER,
            _p("patient", R, "subject"),
            _p("subject", R, "subject"),
            _p("status", T, "status"),
            _p("requester", R, "requester"),
            _p("performer", R, "performer"),
            _p("category", T, "category"),
            _p("code", T, "code"),
            _p("authored", D, "authoredOn"),
        ],
        "Task": [
            IDENTIFIER,
            _p("patient", R, "for"),
            _p("subject", R, "for"),
            _p("status", T, "status"),
            _p("business-status", T, "businessStatus"),
            _p("owner", R, "owner"),
            _p("focus", R, "focus"),
            _p("requester", R, "requester"),
            _p("authored-on", D, "authoredOn"),
            _p("modified", D, "lastModified"),
        ],
        "Goal": [
            IDENTIFIER,
            _p("patient", R, "subject"),
            _p("subject", R, "subject"),
            _p("lifecycle-status", T, "lifecycleStatus"),
            _p("category", T, "category"),
            _p("target-date", D, "target.dueDate"),
        ],
        "Consent": [
            IDENTIFIER,
            _p("patient", R, "patient"),
            _p("status", T, "status"),
            _p("category", T, "category"),
            _p("date", D, "dateTime"),
        ],
        # a referral's clinical context, kept as the clinic sent it (service.records.clinical_context)
        "Condition": [
            IDENTIFIER,
            _p("patient", R, "subject"),
            _p("subject", R, "subject"),
            _p("code", T, "code"),
            _p("category", T, "category"),
            _p("clinical-status", T, "clinicalStatus"),
        ],
        "Observation": [
            IDENTIFIER,
            _p("patient", R, "subject"),
            _p("subject", R, "subject"),
            _p("code", T, "code"),
            _p("category", T, "category"),
            _p("status", T, "status"),
        ],
        "QuestionnaireResponse": [
            IDENTIFIER,
            _p("patient", R, "subject"),
            _p("subject", R, "subject"),
            _p("status", T, "status"),
        ],
        "Coverage": [
            IDENTIFIER,
            _p("patient", R, "beneficiary"),
            _p("beneficiary", R, "beneficiary"),
            _p("status", T, "status"),
        ],
        "RelatedPerson": [IDENTIFIER, _p("patient", R, "patient")],
        "Immunization": [
            IDENTIFIER,
            _p("patient", R, "patient"),
            _p("status", T, "status"),
            _p("vaccine-code", T, "vaccineCode"),
        ],
    }.items()
}
SEARCHABLE_TYPES = tuple(SEARCH_PARAMS)
