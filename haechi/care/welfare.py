"""Welfare checks for elderly people living alone (독거노인 안부확인) — pure rules.

No activity (door, motion, power) for the period opens a check for the caregiver; unanswered
within ``answer_within_minutes`` it escalates to the district office. Active heat-wave or
cold-wave warnings for the person's district shorten the period (``welfare.toml``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any


def period(rules: dict[str, Any], active_hazards: Iterable[str]) -> tuple[float, str | None]:
    """(hours without activity that open a check, the hazard that tightened it or None)."""
    hours, why = float(rules["base_hours"]), None
    for hazard in active_hazards:
        tightened = rules.get("tighten", {}).get(hazard)
        if tightened is not None and tightened < hours:
            hours, why = float(tightened), hazard
    return hours, why


def check_due(last_activity: datetime | None, since: datetime, now: datetime, hours: float) -> bool:
    """Whether the quiet time (from the last activity, or from ``since`` when none) reaches ``hours``."""
    quiet_from = last_activity or since
    return now - quiet_from >= timedelta(hours=hours)


def same_district(area_code: str | None, warning_area: str | None) -> bool:
    """A warning applies to a home in its district (codes share the 5-digit 시군구 prefix), or
    anywhere in its city when it is city-wide (a 2-digit 시도 code such as Seoul's 11)."""
    if not area_code or not warning_area:
        return False
    return area_code.startswith(warning_area[:5])
