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
    targets: tuple[str, ...] = ()
    """For a reference parameter: the types a bare id names (``patient=123`` is ``Patient/123``);
    none: a bare id matches a reference of any type."""


COMMON_PARAMS: dict[str, SearchParam] = {
    p.name: p
    for p in (
        SearchParam("_id", ParamType.TOKEN, ("id",), "The resource id."),
        SearchParam(
            "_lastUpdated", ParamType.DATE, ("meta.lastUpdated",), "When the resource last changed (gt ge lt le eq ne)."
        ),
    )
}
"""The parameters every resource type has (searched on the resource itself, not its index rows)."""


def element_values(resource: dict[str, Any], path: str) -> list[Any]:
    """The values at a dotted path into a resource, lists flattened on the way (nulls dropped)."""
    current: list[Any] = [resource]
    for part in path.split("."):
        found: list[Any] = []
        for item in current:
            value = item.get(part) if isinstance(item, dict) else None
            if isinstance(value, list):
                found.extend(value)
            elif value is not None:
                found.append(value)
        current = found
    return current


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
        for value in element_values(resource, path):
            if param.type is ParamType.DATE and isinstance(value, str):
                moment = to_moment(value)
                if moment is not None:
                    rows.add((None, moment))
            elif param.type is ParamType.REFERENCE and isinstance(value, dict):
                if isinstance(value.get("reference"), str):
                    rows.add((value["reference"], None))
            elif param.type is ParamType.REFERENCE and isinstance(value, str):  # a canonical: url[|version]
                rows.update((canonical[:300], None) for canonical in {value, value.split("|", 1)[0]})
            elif param.type is ParamType.STRING and isinstance(value, str):
                rows.add((value.lower()[:300], None))
            elif param.type is ParamType.TOKEN:
                rows.update((token[:300], None) for token in _tokens(value))
    return sorted(rows, key=lambda row: (row[0] or "", row[1] or datetime.min.replace(tzinfo=UTC)))


REFERENCE_TARGETS: dict[str, tuple[str, ...]] = {
    "patient": ("Patient",),
    "subject": ("Patient",),
    "encounter": ("Encounter",),
    "focus": ("ServiceRequest",),
}
"""Types a bare id expands to; a reference parameter not listed matches a bare id of any type."""


def _p(name: str, kind: ParamType, *paths: str, doc: str = "") -> SearchParam:
    targets = REFERENCE_TARGETS.get(name, ()) if kind is ParamType.REFERENCE else ()
    return SearchParam(name, kind, paths, doc, targets)


T, R, D, S = ParamType.TOKEN, ParamType.REFERENCE, ParamType.DATE, ParamType.STRING
IDENTIFIER = _p("identifier", T, "identifier", doc="system|value or value")
STATUS, TYPE, CATEGORY = _p("status", T, "status"), _p("type", T, "type"), _p("category", T, "category")
SUBJECT = (_p("patient", R, "subject"), _p("subject", R, "subject"))

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
            *SUBJECT,
            _p("date", D, "period.start"),
            STATUS,
            TYPE,
            _p("class", T, "class"),
            _p("participant", R, "participant.individual"),
        ],
        "DocumentReference": [
            IDENTIFIER,
            *SUBJECT,
            _p("encounter", R, "context.encounter"),
            _p("date", D, "date"),
            STATUS,
            TYPE,
            CATEGORY,
            _p("author", R, "author"),
        ],
        "CareTeam": [
            IDENTIFIER,
            *SUBJECT,
            STATUS,
            CATEGORY,
            _p("participant", R, "participant.member"),
        ],
        "ServiceRequest": [
            IDENTIFIER,
            *SUBJECT,
            STATUS,
            _p("requester", R, "requester"),
            _p("performer", R, "performer"),
            CATEGORY,
            _p("code", T, "code"),
            _p("authored", D, "authoredOn"),
        ],
        "Task": [
            IDENTIFIER,
            _p("patient", R, "for"),
            _p("subject", R, "for"),
            STATUS,
            _p("business-status", T, "businessStatus"),
            _p("owner", R, "owner"),
            _p("focus", R, "focus"),
            _p("requester", R, "requester"),
            _p("authored-on", D, "authoredOn"),
            _p("modified", D, "lastModified"),
        ],
        "Goal": [
            IDENTIFIER,
            *SUBJECT,
            _p("lifecycle-status", T, "lifecycleStatus"),
            CATEGORY,
            _p("target-date", D, "target.dueDate"),
        ],
        "Consent": [
            IDENTIFIER,
            _p("patient", R, "patient"),
            STATUS,
            CATEGORY,
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
        # outcome assessments (US Core Observation Screening Assessment) and the clinical context
        "Observation": [
            IDENTIFIER,
            _p("patient", R, "subject"),
            _p("subject", R, "subject"),
            _p("code", T, "code"),
            _p("category", T, "category"),
            _p("status", T, "status"),
            _p("date", D, "effectiveDateTime", "effectivePeriod.start", "effectiveInstant"),
            _p("encounter", R, "encounter"),
            _p("performer", R, "performer"),
            _p("derived-from", R, "derivedFrom", doc="The QuestionnaireResponse the scores were taken from"),
            _p("has-member", R, "hasMember", doc="The item and total Observations a panel groups"),
        ],
        "QuestionnaireResponse": [
            IDENTIFIER,
            _p("patient", R, "subject"),
            _p("subject", R, "subject"),
            _p("status", T, "status"),
            _p(
                "questionnaire",
                R,
                "questionnaire",
                doc="The Questionnaire's canonical URL, with |version for one version or without for every one",
            ),
            _p("authored", D, "authored"),
            _p("author", R, "author"),
            _p("encounter", R, "encounter"),
        ],
        # the program's outcome instruments (no participant's data)
        "Questionnaire": [
            IDENTIFIER,
            _p("url", T, "url", doc="The canonical URL, exactly"),
            _p("version", T, "version"),
            _p("name", S, "name"),
            _p("title", S, "title"),
            _p("status", T, "status"),
            _p("code", T, "code"),
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
