"""Helpers of the bulk export tests: kick off, run, fetch the manifest and the files."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import httpx
import orjson

from service.bulk.runner import ExportRunner

ASYNC = {"Prefer": "respond-async"}


async def kick_off(http: httpx.AsyncClient, headers: dict[str, str], path: str = "/fhir/$export", **params: Any) -> str:
    answer = await http.get(path, params=params, headers={**headers, **ASYNC})
    assert answer.status_code == 202, answer.text
    return answer.headers["content-location"]


async def finished(
    http: httpx.AsyncClient, headers: dict[str, str], status: str, runner: ExportRunner
) -> dict[str, Any]:
    await runner.drain()
    answer = await http.get(status, headers=headers)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def files(
    http: httpx.AsyncClient, headers: dict[str, str], manifest: dict[str, Any]
) -> dict[str, list[dict[str, Any]]]:
    """Resource type -> the resources of its files (each line parsed on its own)."""
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in manifest["output"]:
        answer = await http.get(item["url"], headers=headers)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("application/fhir+ndjson")
        lines = answer.content.split(b"\n")
        assert lines[-1] == b""  # every line ends with a newline
        resources = [orjson.loads(line) for line in lines[:-1]]
        assert len(resources) == item["count"]
        assert all(r["resourceType"] == item["type"] for r in resources)
        found[item["type"]] += resources
    return dict(found)


async def search_ids(http: httpx.AsyncClient, headers: dict[str, str], resource_type: str, **params: Any) -> set[str]:
    """Every id a search returns, page after page."""
    ids: set[str] = set()
    answer = await http.get(f"/fhir/{resource_type}", params={"_count": 7, **params}, headers=headers)
    while True:
        assert answer.status_code == 200, answer.text
        bundle = answer.json()
        ids |= {e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"}
        following = [link["url"] for link in bundle.get("link", []) if link["relation"] == "next"]
        if not following:
            return ids
        answer = await http.get(following[0], headers=headers)
