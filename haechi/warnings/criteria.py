"""Official warning criteria, one CSV per hazard in ``criteria/``, each row citing its source.

A city overrides or adds rows without code: a ``criteria/`` folder of its own whose rows replace
ours by (hazard, level, property, scope, window).
"""

from __future__ import annotations

import csv
import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from haechi.core.errors import InvalidInput

HERE = Path(__file__).with_name("criteria")
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, ">": operator.gt, "<": operator.lt, "<=": operator.le}
AGGREGATES = frozenset({"mean", "sum", "max", "latest"})
CRISIS_LEVELS = ("attention", "caution", "alert", "serious")  # 관심 · 주의 · 경계 · 심각
CRISIS_KO = dict(zip(CRISIS_LEVELS, ("관심", "주의", "경계", "심각"), strict=True))
CRISIS_RANK = {level: rank for rank, level in enumerate(CRISIS_LEVELS)}
_DURATION = re.compile(r"^P(?:(?P<days>\d+)D)?(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$")


def duration(text: str) -> timedelta:
    """An ISO 8601 duration of days, hours, minutes and seconds (P2D, PT3H, PT10M, PT0S)."""
    match = _DURATION.match(text.strip())
    if not match or text.strip() in ("P", "PT"):
        raise InvalidInput(f"{text!r} is not an ISO 8601 duration such as PT3H or P2D")
    return timedelta(**{k: int(v) for k, v in match.groupdict().items() if v})


@dataclass(frozen=True, slots=True)
class Criterion:
    """One official rule: when ``aggregate`` of ``property`` over ``window`` meets ``value`` for ``persistence``."""

    hazard: str
    level: str
    property: str
    operator: str
    value: float
    unit: str
    window: timedelta
    aggregate: str
    persistence: timedelta
    lift_operator: str
    lift_value: float
    lift_persistence: timedelta
    crisis_level: str
    cap_severity: str
    cap_urgency: str
    cap_certainty: str
    scope: str
    source: str
    status: str

    def met(self, value: float) -> bool:
        return OPERATORS[self.operator](value, self.value)

    def lifted(self, value: float) -> bool:
        return OPERATORS[self.lift_operator](value, self.lift_value)

    @property
    def key(self) -> tuple[str, str, str, str, timedelta]:
        return self.hazard, self.level, self.property, self.scope, self.window

    @property
    def rank(self) -> int:
        """Higher is graver: the crisis level's place on the Korean 4-level scale."""
        return CRISIS_RANK[self.crisis_level]


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
