"""Assembles /peer/v1: generated record routes plus the explicit actions."""

from __future__ import annotations

from functools import cache

from fastapi import APIRouter, Depends

from service.api.deps import require_json
from service.records.types import ALL

from .actions import router as actions_router
from .assessments import router as assessments_router
from .billing import router as billing_router
from .claims import router as claims_router
from .claims import x12_router
from .coverages import router as coverages_router
from .disclosures import router as disclosures_router
from .matching import router as matching_router
from .records import record_router
from .reports import router as reports_router


@cache  # built once per process: routes hold no app state, and building costs ~0.5 s
def peer_router() -> APIRouter:
    outer = APIRouter(prefix="/peer/v1")
    outer.include_router(x12_router)  # takes an X12 body, not JSON
    router = APIRouter(dependencies=[Depends(require_json)])
    router.include_router(disclosures_router)
    router.include_router(assessments_router)  # /assessments/due before /assessments/{id}
    router.include_router(reports_router)
    router.include_router(coverages_router)
    router.include_router(billing_router)
    router.include_router(matching_router)  # before /{path}/{id}, like the actions
    router.include_router(claims_router)
    router.include_router(actions_router)  # before /{path}/{id} so /referrals/{id}/accept is not shadowed
    for rtype in ALL:
        router.include_router(record_router(rtype))
    outer.include_router(router)
    return outer
