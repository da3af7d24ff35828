"""Suggested factor weights: a logistic regression of retention at 90 days on the factor values at
assignment (statsmodels), shown beside the configured weights with 95% intervals. Never applied.

When to fit is data (``matching_fit.toml``): below ``min_assignments`` assignments followed
``follow_up_days`` days the report says "not enough history (n of N)".
"""

from __future__ import annotations

import tomllib
import warnings
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .matching_compute import Followed

HERE = Path(__file__).parent
FIT_FILE = HERE / "matching_fit.toml"
Status = Literal["fitted", "not enough history", "not fitted"]


class FitPolicyError(ValueError):
    """The fit policy file is wrong (the message names the file)."""


class FitPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min_assignments: int = Field(ge=20, le=100_000)
    follow_up_days: Literal[30, 90]
    confidence: float = Field(gt=0.5, lt=1)
    source: str = Field(min_length=20)
    why: str = Field(min_length=20)


@cache
def load_fit_policy(path: Path = FIT_FILE) -> FitPolicy:
    try:
        with path.open("rb") as handle:
            return FitPolicy.model_validate(tomllib.load(handle))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise FitPolicyError(f"{path.name} cannot be read: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(file)'}: {e['msg']}" for e in exc.errors())
        raise FitPolicyError(f"{path.name} is wrong: {problems}") from None


class SuggestedWeight(BaseModel):
    factor: str
    configured: float = Field(description="The weight in force now.")
    coefficient: float | None = Field(
        description="Change in the log-odds of retention when the factor's value goes from 0 to 1, others held."
    )
    std_error: float | None
    ci_low: float | None
    ci_high: float | None
    suggested: float | None = Field(
        description="The coefficient on the configured weights' scale (scaled so the positive coefficients sum "
        "to the configured total; a negative one suggests 0)."
    )
    note: str | None = Field(default=None, description="Why there is no coefficient (e.g. the factor never varied).")


class WeightSuggestion(BaseModel):
    status: Status
    message: str
    outcome: str
    assignments: int = Field(description="Assignments followed long enough to enter the fit.")
    needed: int
    confidence: float
    applied: Literal[False] = Field(default=False, description="Always false: suggested weights are only shown.")
    weights: list[SuggestedWeight]


def suggest(followed: list[Followed], configured: dict[str, float], policy: FitPolicy) -> WeightSuggestion:
    days = policy.follow_up_days
    rows = [f for f in followed if days in f.retained]
    factors = list(configured)
    head = {
        "outcome": f"retained at {days} days",
        "assignments": len(rows),
        "needed": policy.min_assignments,
        "confidence": policy.confidence,
    }
    empty = [
        SuggestedWeight(
            factor=f,
            configured=configured[f],
            coefficient=None,
            std_error=None,
            ci_low=None,
            ci_high=None,
            suggested=None,
        )
        for f in factors
    ]
    if len(rows) < policy.min_assignments:
        message = f"not enough history ({len(rows)} of {policy.min_assignments} assignments followed {days} days)"
        return WeightSuggestion(status="not enough history", message=message, weights=empty, **head)
    outcome = [1.0 if f.retained[days] else 0.0 for f in rows]
    columns = {f: [r.assignment.factors.get(f, 0.0) for r in rows] for f in factors}
    varied = [f for f in factors if len(set(columns[f])) > 1]
    if len(set(outcome)) < 2 or not varied:
        reason = "every assignment had the same outcome" if len(set(outcome)) < 2 else "no factor varied"
        return WeightSuggestion(status="not fitted", message=f"not fitted: {reason}", weights=empty, **head)
    import numpy as np  # loaded on the first fit, not at start-up
    import statsmodels.api as sm
    from statsmodels.tools.sm_exceptions import (
        ConvergenceWarning,
        PerfectSeparationError,
        PerfectSeparationWarning,
    )

    x = sm.add_constant(np.column_stack([columns[f] for f in varied]), has_constant="add")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = sm.Logit(np.asarray(outcome), x).fit(disp=0, maxiter=200)
        if any(issubclass(w.category, PerfectSeparationWarning | ConvergenceWarning) for w in caught):
            raise ValueError("the fit did not converge (a factor may separate the outcomes perfectly)")
        params, errors = np.asarray(result.params), np.asarray(result.bse)
        ci = np.asarray(result.conf_int(alpha=1 - policy.confidence))
        if not (np.all(np.isfinite(params)) and np.all(np.isfinite(errors))):
            raise ValueError("the estimates are not finite (a factor separates the outcomes)")
    except (PerfectSeparationError, ValueError, ArithmeticError) as exc:  # singular, separated: said so
        return WeightSuggestion(status="not fitted", message=f"not fitted: {exc}", weights=empty, **head)
    coefficient = {f: float(params[i + 1]) for i, f in enumerate(varied)}
    positive = sum(max(0.0, c) for c in coefficient.values())
    scale = sum(configured.values()) / positive if positive > 0 else 0.0
    weights = []
    for f in factors:
        if f not in coefficient:
            weights.append(next(w for w in empty if w.factor == f).model_copy(update={"note": "never varied"}))
            continue
        i = varied.index(f) + 1
        weights.append(
            SuggestedWeight(
                factor=f,
                configured=configured[f],
                coefficient=round(coefficient[f], 4),
                std_error=round(float(errors[i]), 4),
                ci_low=round(float(ci[i][0]), 4),
                ci_high=round(float(ci[i][1]), 4),
                suggested=round(max(0.0, coefficient[f]) * scale, 2),
            )
        )
    message = f"fitted on {len(rows)} assignments; shown for review, never applied"
    return WeightSuggestion(status="fitted", message=message, weights=weights, **head)
