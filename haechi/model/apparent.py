"""The KMA summer apparent temperature (여름철 체감온도), from air temperature and humidity.

Source and test vectors: criteria/apparent_temperature.md — Stull (2011) wet-bulb temperature,
then KMA's 2022 summer formula. KMA applies it from May to September.
"""

from __future__ import annotations

from math import atan, sqrt

#: Months in which KMA uses the summer formula (winter uses wind chill instead).
SUMMER_MONTHS = frozenset(range(5, 10))


def wet_bulb_stull(ta: float, rh: float) -> float:
    """Wet-bulb temperature (°C) from air temperature ``ta`` (°C) and relative humidity ``rh`` (%)."""
    return (ta * atan(0.151977 * sqrt(rh + 8.313659)) + atan(ta + rh) - atan(rh - 1.676331)
            + 0.00391838 * rh ** 1.5 * atan(0.023101 * rh) - 4.686035)


def apparent_temperature(ta: float, rh: float) -> float:
    """KMA summer apparent temperature (°C)."""
    tw = wet_bulb_stull(ta, rh)
    return -0.2442 + 0.55399 * tw + 0.45535 * ta - 0.0022 * tw ** 2 + 0.00278 * tw * ta + 3.0
