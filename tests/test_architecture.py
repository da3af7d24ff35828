"""The house rules that no linter checks by itself: modules stay small (one job each). The import
layering and the absence of package loops are import-linter contracts in pyproject.toml, run by
`make lint`; this test also runs them so a plain `pytest` run keeps them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 400
# frozen migrations are data, not jobs (left out by _modules); no module is excepted
EXCEPTED: set[str] = set()


def _modules() -> list[Path]:
    found = [*ROOT.joinpath("service").rglob("*.py"), *ROOT.joinpath("mappings").rglob("*.py")]
    return [p for p in found if "migrations" not in p.parts]


def test_no_module_is_over_the_limit() -> None:
    over = {
        str(p.relative_to(ROOT)): n
        for p in _modules()
        if str(p.relative_to(ROOT)) not in EXCEPTED and (n := len(p.read_text().splitlines())) > LIMIT
    }
    assert over == {}


def test_the_rule_sees_every_package() -> None:
    names = {str(p.relative_to(ROOT)) for p in _modules()}
    assert "service/fhir/search/sql.py" in names
    assert "mappings/models.py" in names


def test_import_contracts_hold() -> None:
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint_imports is not None, "import-linter is a dev dependency"
    done = subprocess.run([lint_imports, "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "0 broken" in done.stdout
