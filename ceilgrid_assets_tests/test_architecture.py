"""The import directions of docs/architecture.md hold, and the engine runs without observers.

The contracts live in pyproject.toml; import-linter checks them on the real
import graph (the same command as ``make lint``).
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from helpers import PROJECT_ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def test_import_contracts_are_kept() -> None:
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_contracts_cover_the_documented_rules() -> None:
    """The enforced contracts are the ones docs/architecture.md describes, not weaker ones."""
    config = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    contracts = {contract["type"]: contract for contract in config["contracts"]}
    layers = contracts["layers"]["layers"]
    assert layers[0] == "ceilgrid_assets.definitions"
    assert layers[-1] == "ceilgrid_assets.core.engine"
    forbidden = [c for c in config["contracts"] if c["type"] == "forbidden"]
    core = next(c for c in forbidden if c["source_modules"] == ["ceilgrid_assets.core"])
    assert {"dagster", "opentelemetry"} <= set(core["forbidden_modules"])


def test_the_engine_lays_out_a_room_without_importing_opentelemetry() -> None:
    """In a fresh interpreter: complete a room; no OpenTelemetry or Dagster module is loaded."""
    script = (
        "import sys\n"
        "from ceilgrid_assets.core.engine.grid import Room\n"
        "from ceilgrid_assets.core.engine.pipeline import complete_room\n"
        "import numpy as np\n"
        "result = complete_room(Room('r', np.zeros((6, 6), dtype=np.uint8)))\n"
        "assert result.compliant\n"
        "banned = ('opentelemetry', 'dagster', 'ceilgrid_assets.observability')\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(banned))\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == ""
