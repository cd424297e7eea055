"""The care services' thresholds, read from ``rules.toml`` and ``welfare.toml`` (sources named there)."""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent


@cache
def rules() -> dict[str, Any]:
    with open(HERE / "rules.toml", "rb") as f:
        return tomllib.load(f)


@cache
def welfare_rules() -> dict[str, Any]:
    with open(HERE / "welfare.toml", "rb") as f:
        return tomllib.load(f)
