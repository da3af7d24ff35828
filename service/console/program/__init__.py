"""The program staff's console screens under /console/program: the referral inbox with match
suggestions, participants and their timelines, claim readiness, each participant's accounting of
disclosures, and the spreadsheet import. The data each page shows is gathered by the modules without
``pages_`` in their name, through the records, audit, billing and import use cases the API and the
CLI use."""

from __future__ import annotations

from fastapi import APIRouter

from . import pages_claims, pages_disclosures, pages_import, pages_participants, pages_referrals

router = APIRouter(prefix="/program")
router.include_router(pages_referrals.router)
router.include_router(pages_disclosures.router)
router.include_router(pages_participants.router)
router.include_router(pages_claims.router)
router.include_router(pages_import.router)

__all__ = ["router"]
