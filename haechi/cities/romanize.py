"""English names for dongs that have no official one, by Revised Romanization (automatic, approximate)."""

from __future__ import annotations

import re

from korean_romanizer.romanizer import Romanizer

_SUFFIX = re.compile(r"^(?P<stem>.+?)(?P<number>\d*)(?P<suffix>동|가|로)$")
_ENGLISH_SUFFIX = {"동": "dong", "가": "ga", "로": "ro"}


def romanize_dong(name: str) -> str:
    """'청운동' → 'Cheongun-dong', '종로1가' → 'Jongro 1-ga' (rule-based; not the official form)."""
    match = _SUFFIX.match(name)
    if not match:
        return Romanizer(name).romanize().capitalize()
    stem = Romanizer(match["stem"]).romanize().capitalize()
    number = f" {match['number']}" if match["number"] else ""
    return f"{stem}{number}-{_ENGLISH_SUFFIX[match['suffix']]}"
