"""Assembles /fhir. Order matters where paths overlap: /metadata before the type-level search,
/{type}/_history before /{type}/{id}."""

from __future__ import annotations

from fastapi import APIRouter

from . import metadata, read, search, write


def fhir_router() -> APIRouter:
    router = APIRouter(prefix="/fhir")
    for part in (metadata, read, search, write):
        router.include_router(part.router)
    router.add_api_route("", write.transaction, methods=["POST"], include_in_schema=False)
    return router
