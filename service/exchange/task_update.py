"""The closed loop: our referral's progress onto the clinic's Task at the EHR (If-Match; a 412
re-reads and re-applies while the transition is still legal)."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from .answers import Permanent, Retryable, check, json_of
from .smart_client import SmartClient, TokenFailure

TERMINAL_TASK = frozenset({"cancelled", "completed", "failed", "rejected", "entered-in-error"})
TASK_PROGRESS = ("status", "statusReason", "businessStatus", "output", "lastModified")


def progressed(current: dict[str, Any], ours: dict[str, Any]) -> dict[str, Any] | None:
    """The EHR's Task with our progress applied; None when it shows that progress already. Raises
    Permanent when the EHR's Task ended otherwise (the transition no longer applies)."""
    if all(current.get(name) == ours.get(name) for name in TASK_PROGRESS if name != "lastModified"):
        return None
    if current.get("status") in TERMINAL_TASK and current.get("status") != ours.get("status"):
        raise Permanent(f"the EHR's Task is {current.get('status')}; the referral's transition no longer applies")
    wanted = {**current, **{name: ours[name] for name in TASK_PROGRESS if name in ours}}
    for name in TASK_PROGRESS:
        if name not in ours:
            wanted.pop(name, None)
    return wanted


async def update_task(client: SmartClient, task_id: str, ours: dict[str, Any], attempts: int = 3) -> bool:
    """Apply our Task's progress to the EHR's Task with If-Match; a 412 re-reads and re-applies while
    the transition is still legal. False when the EHR already shows it."""
    for _ in range(attempts):
        try:
            response = await client.request("GET", f"Task/{task_id}")
            check(response)
            current = json_of(response)
        except TokenFailure as error:
            raise Retryable(str(error), token=True) from None
        except httpx.TransportError as error:
            raise Retryable(f"connection failed: {type(error).__name__}") from None
        except ValueError:
            raise Retryable("the EHR's Task is not valid JSON") from None
        wanted = progressed(current, ours)
        if wanted is None:
            return False
        version = (current.get("meta") or {}).get("versionId") or ""
        headers = {"Content-Type": "application/fhir+json"}
        if version:
            headers["If-Match"] = f'W/"{version}"'
        try:
            answer = await client.request("PUT", f"Task/{task_id}", content=orjson.dumps(wanted), headers=headers)
        except TokenFailure as error:
            raise Retryable(str(error), token=True) from None
        except httpx.TransportError as error:
            raise Retryable(f"connection failed: {type(error).__name__}") from None
        if answer.status_code == 412:
            continue
        check(answer)
        return True
    raise Retryable("the EHR's Task kept changing (412 on every attempt)")
