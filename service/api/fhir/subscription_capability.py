"""The Subscriptions part of the CapabilityStatement (kept apart from ``metadata``, which calls it):
the Subscription resource with the backport profile, its interactions and operations, and every topic
PeerLink serves in the capabilitystatement-subscriptiontopic-canonical extension (Subscriptions R5
Backport IG 1.1.0)."""

from __future__ import annotations

from typing import Any

from service.records.subscription_topics import catalog
from service.records.subscriptions import BACKPORT, PROFILE

TOPIC_EXTENSION = BACKPORT + "capabilitystatement-subscriptiontopic-canonical"
OPERATIONS = "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/"
TOPICS = catalog()
"""Loaded and checked when the app is built (a bad topics file stops the start, naming what is wrong)."""


def with_subscriptions(statement: dict[str, Any], base_url: str) -> dict[str, Any]:
    """The statement with the Subscription resource and the topics (their canonicals under ``base_url``)."""
    rest = statement["rest"][0]
    if any(r["type"] == "Subscription" for r in rest["resource"]):
        return statement
    rest["resource"].append(
        {
            "extension": [
                {"url": TOPIC_EXTENSION, "valueCanonical": topic.canonical(base_url)}
                for topic in TOPICS.topics.values()
            ],
            "type": "Subscription",
            "supportedProfile": [PROFILE],
            "documentation": "Topic-based subscriptions (R5 Backport on R4): rest-hook channel, payload "
            "empty, id-only or full-resource; a client subscribes only to what it may read and sees its own.",
            "interaction": [{"code": c} for c in ("read", "create", "update", "delete", "search-type")],
            "operation": [
                {"name": "status", "definition": OPERATIONS + "backport-subscription-status"},
                {"name": "events", "definition": OPERATIONS + "backport-subscription-events"},
            ],
        }
    )
    return statement
