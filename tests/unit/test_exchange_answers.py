"""What an EHR's answer means for a delivery: which statuses are Permanent, which Retryable."""

from __future__ import annotations

import httpx
import pytest

from service.exchange.answers import Permanent, Retryable, check, created_id, outcome_text
from service.exchange.task_update import progressed

OUTCOME = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "invalid", "diagnostics": "patient Jane Doe born 1970"}],
}


@pytest.mark.parametrize("status", [200, 201, 204])
def test_success_raises_nothing(status: int) -> None:
    check(httpx.Response(status))


@pytest.mark.parametrize("status", [400, 403, 404, 405, 410, 415, 422])
def test_refusals_are_permanent(status: int) -> None:
    with pytest.raises(Permanent):
        check(httpx.Response(status))


@pytest.mark.parametrize("status", [408, 409, 412, 423, 425, 429, 500, 502, 503, 504])
def test_not_now_answers_are_retryable(status: int) -> None:
    with pytest.raises(Retryable) as raised:
        check(httpx.Response(status))
    assert not raised.value.token


def test_a_401_is_retried_with_a_fresh_token() -> None:
    with pytest.raises(Retryable) as raised:
        check(httpx.Response(401))
    assert raised.value.token


def test_retry_after_is_honoured() -> None:
    with pytest.raises(Retryable) as raised:
        check(httpx.Response(429, headers={"Retry-After": "17"}))
    assert raised.value.retry_after == 17.0
    with pytest.raises(Retryable) as unparsable:
        check(httpx.Response(503, headers={"Retry-After": "soon"}))
    assert unparsable.value.retry_after is None


def test_the_reason_keeps_issue_codes_but_never_diagnostics() -> None:
    text = outcome_text(httpx.Response(422, json=OUTCOME))
    assert text == "HTTP 422 (invalid)"
    with pytest.raises(Permanent) as raised:
        check(httpx.Response(422, json=OUTCOME))
    assert "Jane" not in raised.value.reason


def test_created_id_from_location_else_body() -> None:
    located = httpx.Response(201, headers={"Location": "https://ehr/fhir/Patient/abc-1/_history/1"})
    assert created_id(located, "Patient") == "abc-1"
    assert created_id(httpx.Response(201, json={"id": "xyz"}), "Patient") == "xyz"
    with pytest.raises(Retryable):
        created_id(httpx.Response(201, content=b"ok"), "Patient")


def test_task_progress_applies_or_is_already_there_or_no_longer_applies() -> None:
    current = {"resourceType": "Task", "id": "t", "status": "requested", "meta": {"versionId": "2"}}
    ours = {"status": "accepted", "businessStatus": {"text": "booked"}}
    wanted = progressed(current, ours)
    assert wanted is not None
    assert wanted["status"] == "accepted" and wanted["businessStatus"] == {"text": "booked"}
    assert wanted["id"] == "t"
    assert progressed({**current, **ours}, ours) is None
    with pytest.raises(Permanent, match="cancelled"):
        progressed({**current, "status": "cancelled"}, ours)
