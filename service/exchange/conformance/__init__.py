"""The EHR conformance check (``peerlink check``): is this EHR fit for PeerLink? One row per
requirement, PASS / FAIL / SKIP with a reason, from what the EHR says about itself (SMART discovery,
CapabilityStatement: ``declared``) and what it does (a token exchange with our assertion, a
read/search round trip and, when asked, a write that is cleaned up afterwards: ``behaviour``).

Every request goes to the EHR's FHIR base and the token endpoint it names, through one
``httpx.AsyncClient`` on the transport given (a real network, or an app in process).
"""

import httpx

from .behaviour import Behaviour
from .declared import Declared
from .report import (
    CAPABILITY,
    CLEANUP,
    CONDITIONAL,
    DISCOVERY,
    NEEDS,
    ROUND_TRIP,
    TOKEN,
    TOKEN_ENDPOINT,
    TRANSACTION,
    WRITE,
    CheckOptions,
    CheckReport,
    CheckResult,
    Need,
    Status,
)

__all__ = [
    "CAPABILITY",
    "CLEANUP",
    "CONDITIONAL",
    "DISCOVERY",
    "NEEDS",
    "ROUND_TRIP",
    "TOKEN",
    "TOKEN_ENDPOINT",
    "TRANSACTION",
    "WRITE",
    "CheckOptions",
    "CheckReport",
    "CheckResult",
    "Need",
    "Status",
    "run_checks",
]


class _Checker(Declared, Behaviour):
    """Both halves of the check, on one run."""


async def run_checks(options: CheckOptions, transport: httpx.AsyncBaseTransport | None = None) -> CheckReport:
    """Check one EHR; ``transport`` carries every request (None: the network)."""
    async with httpx.AsyncClient(transport=transport, timeout=options.timeout, follow_redirects=False) as http:
        checker = _Checker(options, http, transport)
        discovered = await checker.discovery()
        await checker.fetch_capability()
        token_url = checker.token_endpoint(discovered)
        checker.needs()
        await checker.exchange(token_url)
        await checker.round_trip()
        await checker.write()
    return checker.report
