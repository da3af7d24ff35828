"""Finding and running the deploy linters. A missing tool fails the test, loudly: the project
installs every one of them (`.[dev]`), so a skip would only hide a broken setup."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
VENV_BIN = Path(sys.executable).parent


def find_tool(name: str, install_hint: str) -> str:
    """The tool's path: the test venv's own copy first (pinned by the dev extras), then PATH."""
    in_venv = VENV_BIN / name
    if in_venv.is_file() and os.access(in_venv, os.X_OK):
        return str(in_venv)
    on_path = shutil.which(name)
    if on_path is None:
        pytest.fail(f"`{name}` is not installed, and the deploy checks need it: {install_hint}", pytrace=False)
    return on_path


def run(command: list[str], *, cwd: Path = ROOT, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a tool without raising; the caller asserts on the exit code and shows the output."""
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)


def output(result: subprocess.CompletedProcess[str]) -> str:
    return f"$ {' '.join(result.args)}\nexit {result.returncode}\n{result.stdout}{result.stderr}"
