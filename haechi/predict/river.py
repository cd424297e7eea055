"""River stage forecast for the Han River gauges in Seoul, 1–3 hours ahead: a linear ARX model.

For each gauge and horizon h, the *change* of the gauge's level over the next h is a linear
function (least squares, numpy), with separate coefficients when Paldang releases 3,000 m³/s or
more (floods), of lagged features on the 10-minute grid: the gauge's own level
and its recent rises, Paldang Dam's total release and its change over 1 and 2 hours (water takes
hours from Paldang to Seoul), and the flow at Cheongdam Bridge, the upstream gauge in Seoul.
Persistence (no change) is the baseline it must beat. Trained on May–October 2012–2019 of the
HRFCO 10-minute records, tested on 2020–2021 (``benchmarks/river_forecast.py``).

Not used, and why: rainfall (the dataset has none; Seoul's tributaries react to it within the
hour, so a storm over the city is the model's blind spot), tide at Ganghwa (not carried by the
live pack; Haengju Bridge is tidal, so its errors are the largest).

The fitted coefficients ship in ``data/river_arx.json`` so forecasts run without the dataset;
refit with ``python -m haechi.predict.river [path/to/han-river-gauges]``.
"""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from haechi.core.errors import InvalidInput

DATA = Path(__file__).with_name("data") / "river_arx.json"
STEP = timedelta(minutes=10)
HORIZONS_H = (1, 2, 3)
GAUGES = ("1018662", "1018680", "1018683", "1019630")  # Cheongdam, Jamsu, Hangang, Haengju
UPSTREAM_FLOW = "1018662"  # Cheongdam Bridge: the first gauge in Seoul downstream of Paldang
HANGANG_DATUM_M = 2.07  # Hangang Bridge levels in the dataset are elevations (haechi/demo/derive.py)
FEATURES = ("level", "rise_10m", "rise_30m", "rise_1h", "release_kcms", "release_change_1h",
            "release_change_2h", "upstream_flow_kcms", "upstream_flow_change_1h")
LAGS_NEEDED = 12  # steps of history a forecast needs (2 h)
TRAIN_YEARS = range(2012, 2020)
TEST_YEARS = (2020, 2021)


@dataclass(frozen=True)
class Series:
    """Inputs on one regular 10-minute grid (NaN where missing); levels in metres of gauge height."""

    times: list[datetime]
    levels: dict[str, np.ndarray]  # gauge → level (m)
    release: np.ndarray  # Paldang total release (m³/s)
    upstream_flow: np.ndarray  # Cheongdam flow (m³/s)


def _lag(x: np.ndarray, k: int) -> np.ndarray:
    out = np.full_like(x, np.nan)
    out[k:] = x[:-k]
    return out


def features(series: Series, gauge: str) -> np.ndarray:
    """Rows of FEATURES (time × feature) for one gauge, NaN where a lag or input is missing."""
    level, release, flow = series.levels[gauge], series.release / 1000.0, series.upstream_flow / 1000.0
    return np.column_stack([
        level, level - _lag(level, 1), level - _lag(level, 3), level - _lag(level, 6),
        release, release - _lag(release, 6), release - _lag(release, 12),
        flow, flow - _lag(flow, 6),
    ])


def design_matrix(x: np.ndarray) -> np.ndarray:
    return np.column_stack([np.ones(len(x)), x])


#: Feature sets, best first: the upstream flow is often missing in floods (Cheongdam's flow meter
#: reads nothing through the August 2020 peak), so a model without it takes over then.
FEATURE_SETS = {"full": len(FEATURES), "no_upstream": 7}


#: Two regimes: the river answers Paldang's release differently in floods (the rating curve bends and
#: the tide stops mattering), so rows with a release of at least this much get their own coefficients.
#: Our choice among none / 3,000 / 5,000 m³/s (see docs/predictions.md).
HIGH_RELEASE_M3S = 3000.0
REGIMES = ("normal", "high")
RELEASE_COLUMN = FEATURES.index("release_kcms")


def regime_of(x: np.ndarray) -> np.ndarray:
    """True for rows in the high-release regime."""
    return np.atleast_2d(x)[:, RELEASE_COLUMN] * 1000.0 >= HIGH_RELEASE_M3S


def fit(series_list: list[Series]) -> dict[str, Any]:
    """Least-squares coefficients: ``{feature set: {regime: {gauge: {"1h": [intercept, *features]}}}}``."""
    model: dict[str, Any] = {}
    for name, width in FEATURE_SETS.items():
        model[name] = {regime: {} for regime in REGIMES}
        for gauge in GAUGES:
            for h in HORIZONS_H:
                xs, ys = zip(*(_pairs(s, gauge, h, width) for s in series_list), strict=True)
                x, y = np.vstack(xs)[:, :width], np.concatenate(ys)
                high = regime_of(x)
                for regime, rows in (("normal", ~high), ("high", high)):
                    coef, *_ = np.linalg.lstsq(design_matrix(x[rows]), y[rows], rcond=None)
                    model[name][regime].setdefault(gauge, {})[f"{h}h"] = [float(c) for c in coef]
    return model


def _pairs(series: Series, gauge: str, hours: int, width: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose first ``width`` features are complete (all features kept), and the level change ``hours`` later."""
    steps = hours * 6
    x = features(series, gauge)
    level = series.levels[gauge]
    target = np.full_like(level, np.nan)
    target[:-steps] = level[steps:] - level[:-steps]
    ok = np.isfinite(x[:, :width]).all(axis=1) & np.isfinite(target)
    return x[ok], target[ok]


def predict_change(coef: list[float] | np.ndarray, x: np.ndarray) -> np.ndarray:
    """Predicted level change for feature rows, using as many leading features as ``coef`` has."""
    coef = np.asarray(coef, dtype=float)
    return design_matrix(np.atleast_2d(x)[:, :len(coef) - 1]) @ coef


def predict(model: dict[str, Any], gauge: str, hours: int, x: np.ndarray) -> np.ndarray:
    """Level change per row from the best feature set whose features are all present, in its regime; NaN if none."""
    x = np.atleast_2d(x)
    out = np.full(len(x), np.nan)
    high = regime_of(x)
    for name, width in FEATURE_SETS.items():
        todo = np.isnan(out) & np.isfinite(x[:, :width]).all(axis=1)
        for regime, rows in (("normal", todo & ~high), ("high", todo & high)):
            if rows.any():
                out[rows] = predict_change(model[name][regime][gauge][f"{hours}h"], x[rows, :width])
    return out


def backtest(model: dict[str, Any], series_list: list[Series]) -> list[dict[str, Any]]:
    """RMSE and MAE (m) per gauge and horizon for the model and for persistence, on the same rows."""
    out = []
    for gauge in GAUGES:
        for h in HORIZONS_H:
            xs, ys = zip(*(_pairs(s, gauge, h, FEATURE_SETS["no_upstream"]) for s in series_list), strict=True)
            x, y = np.vstack(xs), np.concatenate(ys)
            err = predict(model, gauge, h, x) - y
            base = -y  # persistence predicts no change
            high = x[:, 0] >= np.quantile(x[:, 0], 0.99)  # the top 1 % of levels: floods
            out.append({"gauge": gauge, "horizon_h": h, "n": len(y),
                        "rmse_m": _rmse(err), "mae_m": float(np.abs(err).mean()),
                        "persistence_rmse_m": _rmse(base), "persistence_mae_m": float(np.abs(base).mean()),
                        "flood_rmse_m": _rmse(err[high]), "flood_persistence_rmse_m": _rmse(base[high]),
                        "flood_n": int(high.sum())})
    return out


def _rmse(err: np.ndarray) -> float:
    return float(np.sqrt(np.mean(err ** 2))) if len(err) else float("nan")


# ── the shipped model ──────────────────────────────────────────────────────────────────

@cache
def shipped(path: Path = DATA) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        model = json.load(f)
    if tuple(model["features"]) != FEATURES:
        raise InvalidInput(f"{path.name} was fitted on other features; refit it", field="features")
    return model


def forecast(series: Series, gauge: str, model: dict[str, Any] | None = None) -> dict[int, float | None]:
    """Forecast level (m) of ``gauge`` 1, 2 and 3 hours after the series' last step; None if inputs are missing."""
    model = model or shipped()
    known = model["coefficients"]["full"]["normal"]
    if gauge not in known:
        raise InvalidInput(f"no river model for gauge {gauge!r}; known: {', '.join(known)}", field="gauge")
    if len(series.times) <= LAGS_NEEDED:
        raise InvalidInput(f"a forecast needs more than {LAGS_NEEDED} ten-minute steps of history", field="series")
    x = features(series, gauge)[-1:]
    now = series.levels[gauge][-1]
    changes = {h: predict(model["coefficients"], gauge, h, x)[0] for h in HORIZONS_H}
    return {h: None if np.isnan(c) else float(now + c) for h, c in changes.items()}


# ── reading the HRFCO dataset (I/O) ────────────────────────────────────────────────────

def read_year(folder: Path, year: int) -> Series:
    """One year's file of ``han-river-gauges`` on its 10-minute grid, levels in m of gauge height.

    Zero levels and negative flows are the dataset's known faults: read as missing.
    """
    times, cols = [], {c: [] for c in ("tototf", "fw_1018662", *(f"wl_{g}" for g in GAUGES))}
    with open(folder / f"data_{year}.csv", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            times.append(datetime.fromisoformat(row["ymdhm"]))
            for c, values in cols.items():
                values.append(float(row[c]) if row[c] not in ("", None) else np.nan)
    arrays = {c: np.array(v) for c, v in cols.items()}
    levels = {}
    for g in GAUGES:
        wl = arrays[f"wl_{g}"]
        wl[wl <= 0] = np.nan
        levels[g] = wl / 100.0 - (HANGANG_DATUM_M if g == "1018683" else 0.0)
    release, flow = arrays["tototf"], arrays["fw_1018662"]
    release[release < 0] = np.nan
    flow[flow < 0] = np.nan
    return Series(times, levels, release, flow)


def refit(folder: Path, out: Path = DATA) -> dict[str, Any]:
    """Fit on 2012–2019, test on 2020–2021, and write the coefficients with their provenance."""
    model = fit([read_year(folder, y) for y in TRAIN_YEARS])
    scores = backtest(model, [read_year(folder, y) for y in TEST_YEARS])
    document = {
        "model": "linear ARX on the level change, least squares (numpy.linalg.lstsq); see haechi/predict/river.py",
        "features": list(FEATURES), "coefficient_order": ["intercept", *FEATURES],
        "feature_sets": {name: list(FEATURES[:width]) for name, width in FEATURE_SETS.items()},
        "regimes": {"high": f"Paldang release ≥ {HIGH_RELEASE_M3S:g} m³/s", "normal": "below"},
        "horizons_h": list(HORIZONS_H), "step_minutes": 10,
        "trained_on": "May–October 2012–2019, 10-minute records",
        "tested_on": "May–October 2020–2021 (held out)",
        "data_source": ("Han River Flood Control Office (한강홍수통제소) 10-minute observations as published for the "
                        "Dacon 2022 'Paldang Dam flood operation' competition "
                        "(shared/data/han-river-gauges/SOURCE.txt)"),
        "levels": "metres of gauge height; Hangang Bridge (1018683) = value/100 − 2.07 m",
        "refit": "python -m haechi.predict.river path/to/han-river-gauges",
        "coefficients": model, "backtest": scores,
    }
    out.write_text(json.dumps(document, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    shipped.cache_clear()
    return document


if __name__ == "__main__":
    source = (Path(sys.argv[1]) if len(sys.argv) > 1
              else Path(__file__).resolve().parents[3] / "shared/data/han-river-gauges")
    doc = refit(source)
    for s in doc["backtest"]:
        print(f"{s['gauge']} +{s['horizon_h']}h  RMSE {s['rmse_m']:.3f} m  "
              f"(persistence {s['persistence_rmse_m']:.3f} m)")
