"""A simulated hospital EHR (FHIR R4 + SMART Backend Services) for integrators and tests, and the
conformance checker that points at any EHR. Shares no state with the gateway: it talks to it over
HTTP like a real EHR would.

In process::

    app = create_sandbox_app(SandboxConfig(personality=Personality.EPIC, admin_secret="s3cret-admin"))
    sandbox = sandbox_of(app)             # register_client, clinic_referral, state, set_knobs, reset
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sandbox.test")

As a process: ``python -m service.sandbox sandbox --port 9090`` (``peerlink sandbox``), and
``service.sandbox.control`` to start one and drive its admin API.

The names below are imported on first use, so ``peerlink`` (which registers the sandbox commands)
does not load FastAPI and the FHIR models for every command.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import Sandbox, create_sandbox_app, sandbox_of
    from .clinic import ReferralCreated, ReferralRequest
    from .config import ClientRegistration, Knobs, Personality, SandboxConfig

_WHERE = {
    "Sandbox": ".app",
    "create_sandbox_app": ".app",
    "sandbox_of": ".app",
    "ReferralCreated": ".clinic",
    "ReferralRequest": ".clinic",
    "ClientRegistration": ".config",
    "Knobs": ".config",
    "Personality": ".config",
    "SandboxConfig": ".config",
}

__all__ = [
    "ClientRegistration",
    "Knobs",
    "Personality",
    "ReferralCreated",
    "ReferralRequest",
    "Sandbox",
    "SandboxConfig",
    "create_sandbox_app",
    "sandbox_of",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
