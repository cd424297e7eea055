"""The house keeps its shape: the import contracts of pyproject.toml and the line length hold.

The same checks as ``make lint``, run with the tests so CI refuses a change that breaks them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, check=False, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_import_contracts_hold():
    result = run(str(BIN / "lint-imports"), "--no-cache")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_lines_are_no_longer_than_the_configured_length():
    result = run(str(BIN / "ruff"), "check", "--select", "E501", "haechi", "tests", "benchmarks", "tools")
    assert result.returncode == 0, result.stdout[-4000:]


def test_no_import_circles_between_modules():
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import house
    finally:
        sys.path.pop(0)
    found = house.measure(grimp.build_graph("haechi"))
    assert found["cycles"] == []
    assert found["two_way"] == []
    assert found["upward"] == []
