"""The million bench's load generator reads a searchset's head alone (its links, whether it has entries):
what it reads is what a whole parse of the Bundle says, for the gateway's Bundles and any other."""

from __future__ import annotations

import orjson
import pytest

from service.fhir.bundle import splice
from tests.bench.million_client import next_link, no_entries

NEXT = "http://gateway.test/fhir/Encounter?date=ge2026-01-01&_count=50&_cursor=abc"
RESOURCE = b'{"resourceType":"Encounter","id":"e1","contained":[{"resourceType":"Bundle","entry":[]}]}'


@pytest.mark.parametrize(
    "body",
    [
        splice("searchset", [("u1", RESOURCE, {"search": {"mode": "match"}})], total=3, links=[("next", NEXT)]),
        splice("searchset", [], total=0, links=[("self", "http://gateway.test/fhir/Encounter")]),
        splice("searchset", [("u1", RESOURCE, {})] * 2, links=[("self", "x"), ("next", NEXT)]),
        orjson.dumps({"entry": [{"resource": {}}], "link": [{"relation": "next", "url": NEXT}]}),
        orjson.dumps({"resourceType": "Bundle", "type": "searchset", "total": 0}),
    ],
)
def test_the_head_says_what_the_whole_bundle_says(body):
    bundle = orjson.loads(body)
    assert no_entries(body) is (not bundle.get("entry"))
    nexts = [link["url"] for link in bundle.get("link", []) if link["relation"] == "next"]
    assert next_link(body) == ("/fhir/Encounter?date=ge2026-01-01&_count=50&_cursor=abc" if nexts else None)
