"""What an EHR's refusal says: the OperationOutcome's issues (never resource content), truncated, and
whether a refused transaction Bundle means "not Bundles" (single writes follow) or "not this content"."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from service.exchange.answers import BundleRefused, Permanent, Retryable, check, refused
from service.exchange.refusal import outcome_summary, refuses_bundles


def outcome(*issues: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": list(issues), **extra}


def test_the_summary_keeps_severity_code_diagnostics_and_details_text() -> None:
    body = outcome(
        {"severity": "error", "code": "invalid", "diagnostics": "Encounter.status:  required", "expression": ["x"]},
        {"severity": "warning", "code": "processing", "details": {"text": "slow", "coding": [{"code": "MSG"}]}},
    )
    assert outcome_summary(body) == "error invalid: Encounter.status: required; warning processing: slow"


def test_the_summary_leaves_out_resource_content_and_says_each_text_once() -> None:
    body = outcome(
        {"severity": "error", "code": "invalid", "diagnostics": "bad", "details": {"text": "bad"}},
        contained=[{"resourceType": "Patient", "name": [{"family": "Okafor"}]}],
        text={"div": "<div>Okafor</div>"},
    )
    summary = outcome_summary(body)
    assert summary == "error invalid: bad" and "Okafor" not in summary


def test_the_summary_is_truncated() -> None:
    summary = outcome_summary(outcome({"severity": "error", "code": "invalid", "diagnostics": "y" * 900}), limit=100)
    assert summary is not None and len(summary) == 100 and summary.endswith("...")


@pytest.mark.parametrize("body", [None, {}, {"resourceType": "Patient", "issue": [{"code": "x"}]}, outcome(), "text"])
def test_no_operation_outcome_no_summary(body: Any) -> None:
    assert outcome_summary(body) is None


@pytest.mark.parametrize("status", [403, 405, 501])
def test_these_statuses_refuse_bundles_whatever_the_body(status: int) -> None:
    assert refuses_bundles(status, None)
    assert refuses_bundles(status, outcome({"code": "invalid"}))


@pytest.mark.parametrize(
    "issue",
    [
        {"code": "not-supported"},
        {"code": "processing", "diagnostics": "Transaction bundles are not supported"},
        {"code": "invalid", "details": {"text": "Bundle type transaction is not allowed for this client"}},
        {"code": "processing", "diagnostics": "Unsupported bundle type: transaction"},
    ],
)
@pytest.mark.parametrize("status", [400, 422])
def test_a_400_or_422_refuses_bundles_when_it_says_so(status: int, issue: dict[str, Any]) -> None:
    assert refuses_bundles(status, outcome(issue))


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (422, outcome({"code": "invalid", "diagnostics": "Encounter.period: end before start"})),
        (400, outcome({"code": "required", "diagnostics": "Bundle.entry[2].resource: subject is required"})),
        (400, None),
        (404, outcome({"code": "not-supported"})),
        (409, outcome({"code": "not-supported"})),
    ],
)
def test_a_refusal_of_the_content_does_not_refuse_bundles(status: int, body: Any) -> None:
    assert not refuses_bundles(status, body)


def test_a_bundle_refusal_is_raised_only_for_a_bundle() -> None:
    answer = httpx.Response(405, json=outcome({"severity": "error", "code": "not-supported", "diagnostics": "no"}))
    with pytest.raises(BundleRefused) as raised:
        check(answer, bundle=True)
    assert raised.value.status == 405 and raised.value.outcome == "error not-supported: no"
    assert raised.value.reason == "HTTP 405 (not-supported)"  # the reason keeps codes only
    single = refused(answer)
    assert type(single) is Permanent and single.status == 405


def test_a_501_to_a_bundle_refuses_bundles_and_to_a_single_write_is_retried() -> None:
    assert isinstance(refused(httpx.Response(501), bundle=True), BundleRefused)
    assert isinstance(refused(httpx.Response(501)), Retryable)
    assert isinstance(refused(httpx.Response(503), bundle=True), Retryable)


def test_a_retryable_answer_keeps_what_the_ehr_said() -> None:
    error = refused(
        httpx.Response(503, json=outcome({"severity": "error", "code": "transient", "diagnostics": "busy"}))
    )
    assert isinstance(error, Retryable) and error.status == 503 and error.outcome == "error transient: busy"
