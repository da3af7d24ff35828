"""A QuestionnaireResponse sent to PeerLink, read as an assessment of one of its instruments (pure).

The response names its Questionnaire by canonical (``url|version``, or the bare ``url`` for the
newest version); it must be one of the registry's instruments. Each item is matched to the
instrument's item by ``linkId`` (nested groups are walked); its one answer is a ``valueCoding``
matched by system and code to the item's answer options, or a ``valueInteger`` matched by the
option's value. The answers are then scored by the domain (``service.domain.assessment.score``), so
a missing required item or an answer that is not an option is refused here, before anything is
stored. Every refusal is a ``MappingError`` naming the element as sent (an item by its position, a
missing item by its linkId); no refusal repeats an answer (answers are PHI).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service.domain.assessment import AssessmentScore, score
from service.domain.errors import RuleViolation
from service.domain.instruments import Instrument, Registry

from .context import MappingError, check_valid

ROOT = "QuestionnaireResponse"
STATUSES = ("completed", "amended")
MAX_DEPTH = 64
"""JSON nesting a response may have (ten levels of groups need about twenty); deeper is refused
before validation, which would otherwise exhaust the interpreter's stack."""


@dataclass(frozen=True)
class InboundAssessment:
    """What a QuestionnaireResponse says, checked against its instrument and scored."""

    instrument: Instrument
    answers: dict[str, int]
    """Item linkId -> the value of the chosen answer option."""
    score: AssessmentScore
    status: str
    """completed, or amended (a correction of a response sent before)."""
    completed_at: datetime
    subject: Mapping[str, Any]
    author: Mapping[str, Any] | None
    source: Mapping[str, Any] | None
    identifier: tuple[str, str] | None
    """The sender's (system, value) of its response, when it gave one."""


def find_instrument(registry: Registry, canonical: Any) -> Instrument:
    """The instrument a ``questionnaire`` canonical names: ``url|version``, or ``url`` for the newest."""
    element = f"{ROOT}.questionnaire"
    if not isinstance(canonical, str) or not canonical:
        raise MappingError(element, "required: the canonical URL of one of PeerLink's Questionnaires")
    url, _, version = canonical.partition("|")
    versions = [i for i in registry.instruments.values() if i.url == url]
    if not versions:
        known = ", ".join(sorted({i.url for i in registry.instruments.values()}))
        raise MappingError(element, f"names no Questionnaire PeerLink knows; it knows {known}")
    if version:
        found = next((i for i in versions if i.version == version), None)
        if found is None:
            held = ", ".join(sorted(i.version for i in versions))
            raise MappingError(element, f"names a version PeerLink does not know; it knows {held}")
        return found
    return registry.get(versions[0].id)


def _items(items: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(element path, item) of every item that carries answers, groups walked depth first."""
    for index, item in enumerate(items if isinstance(items, list) else []):
        at = f"{path}.item[{index}]"
        if not isinstance(item, dict):
            raise MappingError(at, "must be an object")
        yield at, item
        yield from _items(item.get("item"), at)
        for answer_index, answer in enumerate(item.get("answer") or []):
            if isinstance(answer, dict) and answer.get("item"):
                yield from _items(answer["item"], f"{at}.answer[{answer_index}]")


def _value(instrument: Instrument, link_id: str, answer: dict[str, Any], at: str) -> int:
    """The option value an answer chooses; an answer that is no option of the item is refused."""
    options = instrument.options(link_id)
    coding = answer.get("valueCoding")
    if isinstance(coding, dict):
        for option in options:
            if option.code and option.code.system == coding.get("system") and option.code.code == coding.get("code"):
                return option.value
        raise MappingError(at, f"the answer to item {link_id} is not one of its answer options (system and code)")
    if "valueInteger" in answer and isinstance(answer["valueInteger"], int):
        if any(o.value == answer["valueInteger"] for o in options):
            return int(answer["valueInteger"])
        raise MappingError(at, f"the answer to item {link_id} is not the value of one of its answer options")
    raise MappingError(at, f"answer item {link_id} with a valueCoding or a valueInteger of its answer options")


def read_answers(instrument: Instrument, resource: Mapping[str, Any]) -> tuple[dict[str, int], dict[str, str]]:
    """(linkId -> value, linkId -> the element where it was answered)."""
    answers: dict[str, int] = {}
    where: dict[str, str] = {}
    for at, item in _items(resource.get("item"), ROOT):
        link_id = item.get("linkId")
        sent = item.get("answer") or []
        if not sent:
            continue  # a group, or an item left unanswered (a required one is refused when scored)
        if not isinstance(link_id, str) or instrument.item(link_id) is None:
            raise MappingError(at, f"linkId names no item of {instrument.id} {instrument.version}")
        if link_id in answers:
            raise MappingError(at, f"item {link_id} is answered twice")
        if len(sent) != 1:
            raise MappingError(at, f"item {link_id} takes exactly one answer")
        answers[link_id] = _value(instrument, link_id, sent[0], at)
        where[link_id] = at
    return answers, where


def _scored(instrument: Instrument, answers: dict[str, int], where: dict[str, str]) -> AssessmentScore:
    try:
        return score(instrument, answers)
    except RuleViolation as exc:
        problem = exc.errors[0] if exc.errors else {}
        loc = problem.get("loc") or []
        link_id = str(loc[-1]) if loc else ""
        element = where.get(link_id) or f"{ROOT}.item.where(linkId='{link_id}')"
        if problem.get("type") == "missing":
            raise MappingError(element, f"item {link_id} of {instrument.id} is required and has no answer") from None
        raise MappingError(element, f"the answer to item {link_id} is not one of its answer options") from None


def _identifier(resource: Mapping[str, Any]) -> tuple[str, str] | None:
    ident = resource.get("identifier")
    if isinstance(ident, dict) and ident.get("system") and ident.get("value"):
        return str(ident["system"]), str(ident["value"])
    return None


def _authored(resource: Mapping[str, Any]) -> datetime:
    element = f"{ROOT}.authored"
    authored = resource.get("authored")
    if not isinstance(authored, str) or not authored:
        raise MappingError(element, "required: when the questionnaire was completed")
    try:
        at = datetime.fromisoformat(authored)
    except ValueError:
        at = None
    if at is None or at.tzinfo is None or "T" not in authored:
        raise MappingError(element, "give the date and time with a time zone, such as 2026-01-03T09:15:00-08:00")
    return at


def _reference(resource: Mapping[str, Any], element: str) -> Mapping[str, Any] | None:
    found = resource.get(element)
    return found if isinstance(found, dict) else None


def _depth(node: Any) -> int:
    """How deeply ``node`` nests (iteratively: the answer must not itself recurse)."""
    deepest, stack = 0, [(node, 1)]
    while stack:
        current, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(current, dict):
            stack.extend((value, level + 1) for value in current.values())
        elif isinstance(current, list):
            stack.extend((value, level + 1) for value in current)
    return deepest


def from_fhir(resource: Mapping[str, Any], registry: Registry) -> InboundAssessment:
    """A QuestionnaireResponse (JSON) as a scored assessment of a known instrument, or a MappingError."""
    if resource.get("resourceType") != ROOT:
        raise MappingError("resourceType", f"expected {ROOT}")
    if _depth(resource) > MAX_DEPTH:
        raise MappingError(ROOT, f"nests deeper than {MAX_DEPTH} levels")
    check_valid(resource)
    instrument = find_instrument(registry, resource.get("questionnaire"))
    if resource.get("status") not in STATUSES:
        raise MappingError(f"{ROOT}.status", "an assessment is received completed or amended")
    subject = _reference(resource, "subject")
    if subject is None:
        raise MappingError(f"{ROOT}.subject", "required: the Patient who answered")
    completed_at = _authored(resource)
    answers, where = read_answers(instrument, resource)
    scored = _scored(instrument, answers, where)
    return InboundAssessment(
        instrument=instrument,
        answers=answers,
        score=scored,
        status=str(resource["status"]),
        completed_at=completed_at,
        subject=subject,
        author=_reference(resource, "author"),
        source=_reference(resource, "source"),
        identifier=_identifier(resource),
    )
