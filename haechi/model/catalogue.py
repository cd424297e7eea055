"""The observed-property catalogue: UCUM units and the QC parameters of each property, from data files."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from haechi.core.errors import InvalidInput

HERE = Path(__file__).parent


@dataclass(frozen=True, slots=True)
class QcLimits:
    """Plausibility limits of one property, in its catalogue unit.

    ``max_rate_per_min``: larger changes between consecutive readings are spikes.
    ``stuck_count``: that many identical readings in a row mark a stuck sensor (0 = no test).
    ``interval_s``: the expected reporting interval; gaps are measured in it.
    """

    min: float
    max: float
    max_rate_per_min: float
    stuck_count: int
    stuck_tolerance: float
    interval_s: float


@dataclass(frozen=True, slots=True)
class ObservedProperty:
    code: str
    name_en: str
    name_ko: str
    definition: str
    unit_name: str
    unit_symbol: str  # UCUM
    limits: QcLimits
    source: str

    @property
    def unit_definition(self) -> str:
        return f"http://unitsofmeasure.org/ucum.html#{self.unit_symbol}"


@cache
def catalogue(path: Path = HERE / "properties.csv") -> dict[str, ObservedProperty]:
    with open(path, encoding="utf-8") as f:
        return {row["code"]: _property(row) for row in csv.DictReader(f)}


def _property(row: dict[str, str]) -> ObservedProperty:
    limits = QcLimits(
        min=float(row["min"]), max=float(row["max"]), max_rate_per_min=float(row["max_rate_per_min"]),
        stuck_count=int(row["stuck_count"]), stuck_tolerance=float(row["stuck_tolerance"]),
        interval_s=float(row["interval_s"]),
    )
    fields = {k: row[k] for k in ("code", "name_en", "name_ko", "definition", "unit_name", "unit_symbol", "source")}
    return ObservedProperty(**fields, limits=limits)


def lookup(code: str) -> ObservedProperty:
    try:
        return catalogue()[code]
    except KeyError:
        raise InvalidInput(f"unknown observed property {code!r}; known: {', '.join(catalogue())}") from None
