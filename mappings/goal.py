"""Recovery goal <-> Goal (US Core Goal).

Goal.category carries the program-local domain code (lossless) and, where one fits, a standard
category (SDOH Clinical Care categories, FHIR goal-category): see goal.toml. An achieved goal is
lifecycleStatus "completed" with achievementStatus "achieved".
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.domain import Goal, GoalFields, GoalStatus
from service.domain.goal import GoalDomain

from . import codes
from .codes import Code
from .context import MappingContext, MappingError, check_valid

KIND = "goal"


class DomainCodes(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    local: Code
    standard: list[Code] = Field(default_factory=list)


class GoalCodes(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lifecycle: dict[GoalStatus, str]
    inbound_lifecycle: dict[str, GoalStatus]
    achieved: Code
    not_achieved: Code
    domains: dict[GoalDomain, DomainCodes]


CODES = codes.load("goal", GoalCodes)
for table, enum in ((CODES.lifecycle, GoalStatus), (CODES.domains, GoalDomain)):
    if missing := set(enum) - set(table):
        raise codes.CodeTableError(f"goal.toml misses {sorted(missing)}")


def to_fhir(goal: Goal, ctx: MappingContext) -> dict[str, Any]:
    domain = CODES.domains[goal.domain]
    resource: dict[str, Any] = {
        "resourceType": "Goal",
        "id": ctx.id_for(KIND, goal.id),
        "identifier": [ctx.identifier(KIND, goal.id)],
        "lifecycleStatus": CODES.lifecycle[goal.status],
    }
    if goal.status is GoalStatus.ACHIEVED:
        resource["achievementStatus"] = CODES.achieved.concept()
    resource["category"] = [domain.local.concept(ctx.system), *(code.concept() for code in domain.standard)]
    resource["description"] = {"text": goal.description}
    resource["subject"] = ctx.reference("participant", goal.participant_id)
    if goal.start_date:
        resource["startDate"] = goal.start_date.isoformat()
    if goal.target_date:
        resource["target"] = [{"dueDate": goal.target_date.isoformat()}]
    resource["expressedBy"] = ctx.reference("participant", goal.participant_id)
    return ctx.finish(resource)


def _codings(concepts: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return [coding for concept in concepts or [] for coding in concept.get("coding") or []]


def _domain(resource: dict[str, Any], ctx: MappingContext) -> GoalDomain:
    codings = _codings(resource.get("category"))
    for domain, entry in CODES.domains.items():
        if any(entry.local.matches(c, ctx.system) for c in codings):
            return domain
    for domain, entry in CODES.domains.items():
        if any(code.matches(c) for code in entry.standard for c in codings):
            return domain
    return GoalDomain.OTHER


def _status(resource: dict[str, Any]) -> GoalStatus:
    lifecycle = resource.get("lifecycleStatus")
    status = CODES.inbound_lifecycle.get(str(lifecycle))
    if status is None:
        raise MappingError("Goal.lifecycleStatus", f"a goal in status {lifecycle!r} cannot be a participant's goal")
    achievement = _codings([resource.get("achievementStatus") or {}])
    if status is GoalStatus.ACHIEVED and any(CODES.not_achieved.matches(c) for c in achievement):
        return GoalStatus.CANCELLED
    return status


def _description(resource: dict[str, Any]) -> str:
    description = resource.get("description") or {}
    if description.get("text"):
        return str(description["text"])
    for coding in description.get("coding") or []:
        if coding.get("display"):
            return str(coding["display"])
    raise MappingError("Goal.description", "a text (or a coding with a display) is required")


def from_fhir(resource: dict[str, Any], ctx: MappingContext) -> GoalFields:
    """A Goal as goal fields; the subject must resolve to a participant of this program."""
    check_valid(resource)
    if resource.get("resourceType") != "Goal":
        raise MappingError("resourceType", "expected Goal")
    due_dates = [str(t["dueDate"]) for t in resource.get("target") or [] if t.get("dueDate")]
    start = resource.get("startDate")
    if start and due_dates and min(due_dates) < str(start):
        raise MappingError("Goal.target.dueDate", "the goal is due before it starts")
    data = {
        "participant_id": ctx.resolve(resource.get("subject"), "Goal.subject"),
        "description": _description(resource),
        "domain": _domain(resource, ctx),
        "start_date": start,
        "target_date": min(due_dates) if due_dates else None,
        "status": _status(resource),
    }
    try:
        return GoalFields.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise MappingError(f"Goal ({'.'.join(map(str, first['loc']))})", first["msg"]) from None
