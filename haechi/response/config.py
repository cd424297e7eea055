"""The response capability's figures and tables, read from ``data/`` (each names its source)."""

from __future__ import annotations

import csv
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

DATA = Path(__file__).with_name("data")


@dataclass(frozen=True, slots=True)
class IncidentKind:
    code: str
    name_ko: str
    name_en: str
    default_center: str
    golden_time_kind: str | None  # fire · rescue · ems, or None when no arrival target applies


@cache
def settings() -> dict[str, Any]:
    with open(DATA / "response.toml", "rb") as f:
        return tomllib.load(f)


@cache
def incident_kinds() -> dict[str, IncidentKind]:
    with open(DATA / "incident_kinds.csv", encoding="utf-8") as f:
        return {r["code"]: IncidentKind(r["code"], r["name_ko"], r["name_en"], r["default_center"],
                                        r["golden_time_kind"] or None) for r in csv.DictReader(f)}


def transitions(name: str) -> dict[str, tuple[str, ...]]:
    """A lifecycle as state → allowed next states, from ``data/<name>_lifecycle.csv``."""
    return _transitions(name)


@cache
def _transitions(name: str) -> dict[str, tuple[str, ...]]:
    allowed: dict[str, list[str]] = {}
    with open(DATA / f"{name}_lifecycle.csv", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            allowed.setdefault(row["from"], []).append(row["to"])
            allowed.setdefault(row["to"], [])
    return {state: tuple(nexts) for state, nexts in allowed.items()}


def golden_time_s(kind: str) -> float | None:
    """The arrival target in seconds for an incident kind, or None when none applies."""
    target = incident_kinds()[kind].golden_time_kind if kind in incident_kinds() else None
    if target is None:
        return None
    return settings()["golden_time"][f"{target}_min"] * 60
