"""JSON Patch (RFC 6902) on a served resource: what is applied, what is a bad request (400) and what
cannot be applied (422), each naming the operation."""

from __future__ import annotations

from typing import Any

import pytest

from service.domain.errors import BadRequest, PatchFailed
from service.inbound.patch import apply_patch

TASK: dict[str, Any] = {
    "resourceType": "Task",
    "id": "t1",
    "status": "requested",
    "input": [{"valueString": "a"}, {"valueString": "b"}],
    "priority": "routine",
    "count": 1,
}


def test_operations_apply_in_order_and_leave_the_document_alone():
    patched = apply_patch(
        TASK,
        [
            {"op": "test", "path": "/status", "value": "requested"},
            {"op": "replace", "path": "/status", "value": "cancelled"},
            {"op": "add", "path": "/statusReason", "value": {"text": "moved away"}},
            {"op": "add", "path": "/input/-", "value": {"valueString": "c"}},
            {"op": "remove", "path": "/input/0"},
            {"op": "copy", "from": "/priority", "path": "/copied"},
            {"op": "move", "from": "/copied", "path": "/moved"},
        ],
    )
    assert patched["status"] == "cancelled"
    assert patched["statusReason"] == {"text": "moved away"}
    assert [i["valueString"] for i in patched["input"]] == ["b", "c"]
    assert patched["moved"] == "routine"
    assert "copied" not in patched
    assert TASK["status"] == "requested"
    assert len(TASK["input"]) == 2


def test_an_empty_patch_changes_nothing():
    assert apply_patch(TASK, []) == TASK


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"op": "replace", "path": "/status", "value": "cancelled"}, "a JSON Patch is an array of operations"),
        ([{"op": "jump", "path": "/status"}], "patch operation 0: op must be one of"),
        (["replace"], "patch operation 0: op must be one of"),
        ([{"op": "replace", "path": "status", "value": "x"}], "patch operation 0 path: a JSON Pointer"),
        ([{"op": "replace", "value": "x"}], "patch operation 0 path: a JSON Pointer"),
        ([{"op": "move", "from": "priority", "path": "/x"}], "patch operation 0 from: a JSON Pointer"),
        ([{"op": "test", "path": "/status", "value": "requested"}, {"op": "add", "path": "/x"}], "patch operation 1"),
    ],
)
def test_malformed_patches_are_bad_requests(patch, message):
    with pytest.raises(BadRequest) as caught:
        apply_patch(TASK, patch)
    assert message in caught.value.detail


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ([{"op": "test", "path": "/status", "value": "accepted"}], "patch operation 0: test failed"),
        ([{"op": "test", "path": "/count", "value": True}], "patch operation 0: test failed"),  # 1 is not true
        ([{"op": "remove", "path": "/nothing"}], "patch operation 0:"),
        ([{"op": "replace", "path": "/input/5", "value": {}}], "patch operation 0:"),
        ([{"op": "add", "path": "/input/x", "value": {}}], "patch operation 0:"),
        ([{"op": "remove", "path": ""}], "patch operation 0:"),
        ([{"op": "move", "from": "/input", "path": "/input/0"}], "patch operation 0:"),
        (
            [{"op": "replace", "path": "/status", "value": "cancelled"}, {"op": "remove", "path": "/gone"}],
            "operation 1",
        ),
    ],
)
def test_operations_that_cannot_apply_fail_naming_the_operation(patch, message):
    with pytest.raises(PatchFailed) as caught:
        apply_patch(TASK, patch)
    assert message in caught.value.detail
    assert TASK["status"] == "requested"


def test_a_failed_test_does_not_repeat_the_values():
    with pytest.raises(PatchFailed) as caught:
        apply_patch(TASK, [{"op": "test", "path": "/status", "value": "secret-value"}])
    assert "secret-value" not in caught.value.detail
    assert "requested" not in caught.value.detail
