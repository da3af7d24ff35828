"""`peerlink` starts without the record layer, the FHIR models or the web stack: a command loads them
when it runs (measured: `peerlink users list` 2.2 -> 1.1 s). A module-level import that pulls them back
in shows here, by name."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("fastapi", "mappings.models", "service.records.outbox_rows", "service.console.mount", "service.fhir.render")


def _loaded(code: str) -> set[str]:
    script = f"import sys\n{code}\nprint('\\n'.join(sys.modules))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    return set(done.stdout.split())


def test_the_command_line_loads_none_of_the_heavy_parts() -> None:
    loaded = _loaded("from service.cli import app")
    assert "service.cli.users" in loaded and "service.sandbox.scenarios" in loaded  # every group is registered
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_console_accounts_load_without_the_pages() -> None:
    loaded = _loaded("from service.console import accounts")
    assert "service.console.accounts" in loaded
    assert "service.console.mount" not in loaded and "fastapi" not in loaded
