"""The words of hazards and warnings every capability shares: an official criterion, the Korean
4-level crisis scale, and a warning's lifecycle change. Pure: the criteria themselves are data
(``haechi/warnings/criteria/``), read by the warnings capability.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from haechi.core.errors import InvalidInput

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


@dataclass(slots=True)
class Change:
    """A lifecycle step of one warning (hazard × area)."""

    kind: str  # issue · update · cancel
    hazard: str
    area: str
    criterion: Criterion | None  # the level now in force (None once cancelled)
    previous: Criterion | None
    value: float | None  # the aggregate that decided it, in the criterion's unit
    at: datetime  # when it became known: the reading's time, or a forecast's issue time
    datastream_id: int
    onset: datetime | None = None  # for a forecast: when the level is expected (its valid time)
