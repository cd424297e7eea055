"""SCS curve-number runoff (USDA NRCS TR-55, 1986; NEH Part 630 ch. 10, 2004), vectorised with numpy.

    S  = 25400 / CN − 254          potential maximum retention (mm)
    Ia = 0.2 S                     initial abstraction (mm)
    Q  = (P − Ia)² / (P − Ia + S)  for P > Ia, else 0   (= (P − 0.2S)² / (P + 0.8S))

P and Q are cumulative depths over the storm. Runoff per time step is the increase of Q.
"""

from __future__ import annotations

import numpy as np

from haechi.core.errors import InvalidInput

#: The initial abstraction ratio of TR-55 (Ia = λS, λ = 0.2).
IA_RATIO = 0.2


def retention_mm(cn: np.ndarray | float) -> np.ndarray:
    """Potential maximum retention S (mm) of curve numbers; S = 0 for CN 100."""
    cn = np.asarray(cn, dtype=float)
    if np.any((cn <= 0) | (cn > 100)) or np.any(np.isnan(cn)):
        raise InvalidInput("a curve number must be in (0, 100]", field="cn")
    return 25400.0 / cn - 254.0


def runoff_mm(rain_mm: np.ndarray | float, cn: np.ndarray | float) -> np.ndarray:
    """Cumulative direct runoff Q (mm) for cumulative rainfall P (mm); broadcasts P against CN."""
    p = np.asarray(rain_mm, dtype=float)
    s = retention_mm(cn)
    excess = np.maximum(p - IA_RATIO * s, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = np.where(excess > 0, excess ** 2 / (excess + s), 0.0)
    return q


def composite_cn(shares: np.ndarray, cns: np.ndarray) -> np.ndarray:
    """Area-weighted curve number (TR-55 ch. 2): rows of land-use shares × the class curve numbers."""
    shares = np.asarray(shares, dtype=float)
    totals = shares.sum(axis=-1, keepdims=True)
    if np.any(totals <= 0):
        raise InvalidInput("every area needs land-use shares that add up to more than 0", field="land_use")
    return (shares / totals) @ np.asarray(cns, dtype=float)


def step_runoff_mm(rain_steps_mm: np.ndarray, cn: np.ndarray) -> np.ndarray:
    """Runoff per time step (mm) of areas × steps, from rainfall per step (steps, or areas × steps)."""
    rain = np.asarray(rain_steps_mm, dtype=float)
    cumulative = np.cumsum(rain, axis=-1)
    q = runoff_mm(cumulative, np.asarray(cn, dtype=float)[:, None])
    return np.diff(q, axis=-1, prepend=0.0)


def rolling_sum(values: np.ndarray, width: int) -> np.ndarray:
    """Trailing sums over ``width`` steps along the last axis (shorter at the start)."""
    c = np.cumsum(values, axis=-1)
    shifted = np.zeros_like(c)
    if width < c.shape[-1]:
        shifted[..., width:] = c[..., :-width]
    return c - shifted
