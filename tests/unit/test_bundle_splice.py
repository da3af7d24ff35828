"""Bundles spliced from stored bytes (service.fhir.bundle.splice): each entry's own fields, whether one
dict serves every entry or each has its own, made on the fly."""

from __future__ import annotations

import orjson

from service.fhir.bundle import splice


def _body(i: int) -> bytes:
    return orjson.dumps({"resourceType": "Patient", "id": f"p{i}", "name": [{"text": 'é " \\ x' * i}]})


def test_entries_of_one_shared_dict_and_of_fresh_dicts_each_keep_their_fields():
    shared = {"search": {"mode": "match"}}
    # a generator: each fresh dict is garbage once its entry is made, so its id could come back
    fresh = ((f"urn:uuid:{i}", _body(i), {"response": {"status": f"{200 + i} OK"}}) for i in range(50))
    for entries, expected in (
        ([(f"urn:uuid:{i}", _body(i), shared) for i in range(50)], [shared] * 50),
        (fresh, [{"response": {"status": f"{200 + i} OK"}} for i in range(50)]),
        ([("urn:uuid:0", _body(0), {})], [{}]),
    ):
        bundle = orjson.loads(splice("searchset", entries, total=50, links=[("self", "http://x/fhir/Patient")]))
        assert bundle["type"] == "searchset" and bundle["total"] == 50
        assert [e["resource"] for e in bundle["entry"]] == [orjson.loads(_body(i)) for i in range(len(expected))]
        assert [e["fullUrl"] for e in bundle["entry"]] == [f"urn:uuid:{i}" for i in range(len(expected))]
        assert [{k: v for k, v in e.items() if k not in ("fullUrl", "resource")} for e in bundle["entry"]] == expected
