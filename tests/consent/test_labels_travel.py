"""Part 2 labels travel with every write to an EHR, a create as much as an update."""

from __future__ import annotations

from service.exchange.send import for_create

LABEL = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "NORDSCLCD"}


def test_a_create_keeps_the_security_labels_and_drops_the_rest_of_our_meta():
    body = {
        "resourceType": "DocumentReference",
        "id": "ours",
        "meta": {"profile": ["http://example.org/p"], "security": [LABEL]},
        "status": "current",
    }
    assert for_create(body) == {"resourceType": "DocumentReference", "meta": {"security": [LABEL]}, "status": "current"}


def test_a_create_without_labels_has_no_meta():
    body = {"resourceType": "Encounter", "id": "ours", "meta": {"profile": ["http://example.org/p"]}, "status": "x"}
    assert for_create(body) == {"resourceType": "Encounter", "status": "x"}
