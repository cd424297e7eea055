"""Unit conversion at the edge: readings arrive in a device's unit and are stored in the catalogue's."""

from __future__ import annotations

import csv
from collections.abc import Callable
from functools import cache
from pathlib import Path

from haechi.core.errors import InvalidInput

HERE = Path(__file__).parent


@cache
def _table(path: Path = HERE / "units.csv") -> dict[tuple[str, str], tuple[float, float]]:
    with open(path, encoding="utf-8") as f:
        return {(r["from_unit"], r["to_unit"]): (float(r["factor"]), float(r["offset"])) for r in csv.DictReader(f)}


#: Common spellings devices send, mapped to UCUM codes.
ALIASES = {"°C": "Cel", "C": "Cel", "degC": "Cel", "°F": "[degF]", "F": "[degF]", "µg/m3": "ug/m3",
           "µg/m³": "ug/m3", "ug/m³": "ug/m3", "mg/m³": "mg/m3", "gal": "Gal", "°": "deg", "g": "[g]",
           "m³/s": "m3/s", "cms": "m3/s", "µε": "u[-]", "ue": "u[-]"}


def ucum(unit: str) -> str:
    return ALIASES.get(unit, unit)


@cache
def converter(from_unit: str, to_unit: str) -> Callable[[float], float]:
    """A function taking a value in ``from_unit`` to ``to_unit``; refuses unknown pairs."""
    source, target = ucum(from_unit), ucum(to_unit)
    if source == target:
        return lambda value: value
    try:
        factor, offset = _table()[(source, target)]
    except KeyError:
        raise InvalidInput(f"cannot convert {from_unit!r} to {to_unit!r}", field="unit") from None
    return lambda value: value * factor + offset
