"""Assembles /fhir. Order matters where paths overlap: /metadata before the type-level search,
/{type}/_history before /{type}/{id}."""

from __future__ import annotations

from functools import cache

from fastapi import APIRouter

from . import audit_events, bulk, bulk_groups, metadata, read, search, subscription, write


@cache  # built once per process: routes hold no app state, and building costs ~0.5 s
def fhir_router() -> APIRouter:
    router = APIRouter(prefix="/fhir")
    router.include_router(metadata.router)  # the CapabilityStatement is public (SMART discovery)
    router.include_router(audit_events.router)  # before the generic /{type} search
    router.include_router(bulk.router)  # $export and the partners' Groups: before the generic /{type} routes
    router.include_router(bulk_groups.router)
    router.include_router(subscription.router)  # Subscription and its $status/$events: before /{type}
    for part in (read, search, write):  # every handler asks for the client (service.api.access)
        router.include_router(part.router)
    router.add_api_route(
        "", write.transaction, methods=["POST"], include_in_schema=False, operation_id="fhir_transaction_base"
    )
    return router
