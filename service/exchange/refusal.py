"""What an EHR's refusal says, as data: the issues of its OperationOutcome (severity, code,
diagnostics, details.text only: never the resource content an answer may echo), and whether a refusal
of a transaction Bundle means "not this shape of request" (so the writes go one by one). Pure: no I/O."""

from __future__ import annotations

import re
from typing import Any

OUTCOME_LIMIT = 500
"""Characters of an EHR's OperationOutcome kept with a dead letter."""
BUNDLE_REFUSAL_STATUSES = frozenset({403, 405, 501})
"""Answers to a transaction Bundle that refuse the interaction itself (forbidden for this client,
method not allowed, not implemented), whatever the body says."""
NOT_SUPPORTED_CODES = frozenset({"not-supported"})
_UNSUPPORTED_TEXT = re.compile(
    r"(transaction|bundle|batch).{0,80}(not (be )?(supported|allowed|accepted|permitted|implemented|processed)|"
    r"unsupported|disabled|refused)|(unsupported|not supported|disallowed)[^.]{0,40}(transaction|bundle)",
    re.IGNORECASE,
)


def _issues(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return []
    return [issue for issue in body.get("issue") or [] if isinstance(issue, dict)]


def _text(value: Any) -> str:
    return " ".join(value.split()) if isinstance(value, str) else ""


def outcome_summary(body: Any, limit: int = OUTCOME_LIMIT) -> str | None:
    """The issues of an OperationOutcome as one line (``error not-supported: diagnostics; ...``),
    at most ``limit`` characters; None when the body is not an OperationOutcome with issues."""
    parts = []
    for issue in _issues(body):
        head = " ".join(x for x in (_text(issue.get("severity")), _text(issue.get("code"))) if x)
        details = issue.get("details")
        texts = [_text(issue.get("diagnostics")), _text(details.get("text")) if isinstance(details, dict) else ""]
        said = " / ".join(dict.fromkeys(t for t in texts if t))
        parts.append(f"{head}: {said}" if head and said else head or said)
    summary = "; ".join(p for p in parts if p)
    if not summary:
        return None
    return summary if len(summary) <= limit else summary[: limit - 3] + "..."


def refuses_bundles(status: int, body: Any) -> bool:
    """Whether an EHR's answer to a transaction Bundle refuses Bundles as such (403, 405, 501; a 400 or
    422 whose OperationOutcome says the interaction is not supported), rather than something in it."""
    if status in BUNDLE_REFUSAL_STATUSES:
        return True
    if status not in (400, 422):
        return False
    for issue in _issues(body):
        if _text(issue.get("code")) in NOT_SUPPORTED_CODES:
            return True
        details = issue.get("details")
        said = f"{_text(issue.get('diagnostics'))} {_text(details.get('text')) if isinstance(details, dict) else ''}"
        if _UNSUPPORTED_TEXT.search(said):
            return True
    return False
