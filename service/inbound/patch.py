"""JSON Patch (RFC 6902) on a resource as PeerLink serves it, by the ``jsonpatch`` library.

A patch that is not one (not an array of operations, an unknown op, a missing value, a path that is
not a JSON Pointer) is a bad request (400); a well-formed operation that cannot be applied (a path
that does not exist, an index out of range, a failed test) is ``PatchFailed`` (422). Either names
the operation by its position.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import jsonpointer

from service.domain.errors import BadRequest, PatchFailed

OPS = ("add", "remove", "replace", "move", "copy", "test")


def _operation(number: int, operation: Any) -> jsonpatch.JsonPatch:
    where = f"patch operation {number}"
    if not isinstance(operation, dict) or operation.get("op") not in OPS:
        raise BadRequest(f"{where}: op must be one of {', '.join(OPS)}")
    for key in ("path", "from"):
        if key == "path" or operation["op"] in ("move", "copy"):
            pointer = operation.get(key)
            if not isinstance(pointer, str) or (pointer and not pointer.startswith("/")):
                raise BadRequest(f"{where} {key}: a JSON Pointer such as /status is required")
    try:
        return jsonpatch.JsonPatch([operation])
    except (jsonpatch.InvalidJsonPatch, jsonpointer.JsonPointerException) as exc:
        raise BadRequest(f"{where}: {exc}") from None


def apply_patch(document: Any, patch: Any) -> Any:
    """``document`` with the RFC 6902 operations applied (it is not changed itself)."""
    if not isinstance(patch, list):
        raise BadRequest("a JSON Patch is an array of operations")
    operations = [_operation(number, operation) for number, operation in enumerate(patch)]
    doc = copy.deepcopy(document)
    for number, operation in enumerate(operations):
        where = f"patch operation {number}"
        try:
            doc = operation.apply(doc, in_place=True)
        except jsonpatch.InvalidJsonPatch as exc:
            raise BadRequest(f"{where}: {exc}") from None
        except jsonpatch.JsonPatchTestFailed:
            raise PatchFailed(f"{where}: test failed") from None  # the message would repeat the values
        except (jsonpatch.JsonPatchConflict, jsonpointer.JsonPointerException) as exc:
            raise PatchFailed(f"{where}: {exc}") from None
    return doc
