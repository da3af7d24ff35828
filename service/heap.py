"""The garbage collector and long-running processes."""

from __future__ import annotations

import gc


def freeze_heap() -> None:
    """The process's long-lived objects (modules, routes, FHIR models) leave the collector's full
    scans: without this, a full collection over them pauses the work in flight for tens of
    milliseconds. Called once a server or worker has started, before it takes work."""
    gc.collect()
    gc.freeze()
