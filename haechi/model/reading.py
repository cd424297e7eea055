"""A reading: one observation as received, before its datastream has judged it; and a rejected input."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(slots=True)
class Reading:
    """One observation as received, validated in form but not yet checked against its datastream."""

    datastream_id: int
    phenomenon_time: datetime
    result: float
    unit: str | None = None
    result_time: datetime | None = None
    parameters: dict[str, Any] | None = None


@dataclass(slots=True)
class Rejected:
    """An input that could not be read: where it was, what was wrong, and the raw text kept."""

    index: int
    reason: str
    field: str | None
    raw: str
