"""Assembles /fhir. Order matters where paths overlap: /metadata before the type-level search,
/{type}/_history before /{type}/{id}."""

from __future__ import annotations

from functools import cache

from fastapi import APIRouter, Depends

from service.api.access import authorize

from . import metadata, read, search, write


@cache  # built once per process: routes hold no app state, and building costs ~0.5 s
def fhir_router() -> APIRouter:
    router = APIRouter(prefix="/fhir")
    router.include_router(metadata.router)  # the CapabilityStatement is public (SMART discovery)
    guarded = [Depends(authorize)]
    for part in (read, search, write):
        router.include_router(part.router, dependencies=guarded)
    router.add_api_route(
        "",
        write.transaction,
        methods=["POST"],
        include_in_schema=False,
        operation_id="fhir_transaction_base",
        dependencies=guarded,
    )
    return router
