"""Official warning criteria, one CSV per hazard in ``criteria/``, each row citing its source.

A city overrides or adds rows without code: a ``criteria/`` folder of its own whose rows replace
ours by (hazard, level, property, scope, window).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from haechi.core.errors import InvalidInput
from haechi.model.hazards import AGGREGATES, CRISIS_LEVELS, OPERATORS, Criterion, duration

HERE = Path(__file__).with_name("criteria")
def _criterion(row: dict[str, str], where: str) -> Criterion:
    try:
        c = Criterion(
            hazard=row["hazard"], level=row["level"], property=row["property"], operator=row["operator"],
            value=float(row["value"]), unit=row["unit"], window=duration(row["window"]),
            aggregate=row["aggregate"], persistence=duration(row["persistence"]),
            lift_operator=row["lift_operator"], lift_value=float(row["lift_value"]),
            lift_persistence=duration(row["lift_persistence"]), crisis_level=row["crisis_level"],
            cap_severity=row["cap_severity"], cap_urgency=row["cap_urgency"], cap_certainty=row["cap_certainty"],
            scope=row["scope"], source=row["source"], status=row.get("status", ""))
    except (KeyError, ValueError, InvalidInput) as exc:
        raise InvalidInput(f"{where}: {exc}") from None
    problems = [
        c.operator not in OPERATORS and f"operator {c.operator!r}",
        c.lift_operator not in OPERATORS and f"lift_operator {c.lift_operator!r}",
        c.aggregate not in AGGREGATES and f"aggregate {c.aggregate!r}",
        c.crisis_level not in CRISIS_LEVELS and f"crisis_level {c.crisis_level!r}",
        not c.source and "an empty source (every official figure names its source)",
    ]
    if any(problems):
        raise InvalidInput(f"{where}: unknown {'; '.join(p for p in problems if p)}")
    return c


def read_folder(folder: Path) -> list[Criterion]:
    rows = []
    for path in sorted(folder.glob("*.csv")):
        with open(path, encoding="utf-8") as f:
            rows += [_criterion(r, f"{path.name} line {n}") for n, r in enumerate(csv.DictReader(f), start=2)]
    return rows


def load_criteria(overrides: Iterable[Path] = ()) -> list[Criterion]:
    """Haechi's criteria, with each override folder's rows replacing or adding by key."""
    by_key = {c.key: c for c in read_folder(HERE)}
    for folder in overrides:
        by_key.update({c.key: c for c in read_folder(folder)})
    return list(by_key.values())
