"""The risk index itself: pure, vectorised numpy over an [areas × indicators] table.

normalise (min-max onto the method's range, direction applied) → dimension scores (weighted mean
of the indicators an area has) → risk (geometric or arithmetic mean of the dimensions) → ranks.
Missing values stay NaN and are never filled: an indicator without data anywhere is dropped and
reported; an area without any value in a dimension is left unranked and reported.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import rankdata

from haechi.core.errors import InvalidInput

METHOD_FILE = Path(__file__).parent / "method.toml"
SOURCE_KINDS = {"statistic", "ratio", "density", "places_density", "places_per_population", "nearest_km",
                "simulation"}


@dataclass(frozen=True)
class Indicator:
    name: str
    dimension: str
    weight: float
    direction: int
    source: dict[str, Any]
    about: str = ""


@dataclass(frozen=True)
class Method:
    name: str
    normalised_range: tuple[float, float]
    aggregation: str
    dong_fallback: str | None
    dimensions: dict[str, float]  # name -> weight, in order
    dimension_names_ko: dict[str, str]
    indicators: list[Indicator]
    sensitivity: dict[str, Any] = field(default_factory=dict)
    framework: str = ""

    def dimension_of(self) -> np.ndarray:
        order = list(self.dimensions)
        return np.array([order.index(i.dimension) for i in self.indicators], dtype=np.int64)


def load_method(path: Path | str | None = None) -> Method:
    """Read and check a method file; InvalidInput names the faulty key."""
    path = Path(path) if path else METHOD_FILE
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise InvalidInput(f"cannot read the risk method {path}: {error}", field="method") from error
    return method_from(raw)


def method_from(raw: dict[str, Any]) -> Method:
    m = raw.get("method", {})
    dims = raw.get("dimensions") or {}
    if not dims:
        raise InvalidInput("the method names no dimensions", field="dimensions")
    indicators = []
    for name, spec in (raw.get("indicators") or {}).items():
        where = f"indicators.{name}"
        if spec.get("dimension") not in dims:
            raise InvalidInput(f"{where}.dimension {spec.get('dimension')!r} is not one of {list(dims)}",
                               field=f"{where}.dimension")
        if float(spec.get("weight", 1.0)) < 0:
            raise InvalidInput(f"{where}.weight must not be negative", field=f"{where}.weight")
        if spec.get("direction", 1) not in (1, -1):
            raise InvalidInput(f"{where}.direction must be 1 or -1", field=f"{where}.direction")
        if (spec.get("source") or {}).get("kind") not in SOURCE_KINDS:
            raise InvalidInput(f"{where}.source.kind must be one of {sorted(SOURCE_KINDS)}",
                               field=f"{where}.source.kind")
        indicators.append(Indicator(name, spec["dimension"], float(spec.get("weight", 1.0)),
                                    int(spec.get("direction", 1)), dict(spec["source"]), spec.get("about", "")))
    if not indicators:
        raise InvalidInput("the method names no indicators", field="indicators")
    aggregation = m.get("aggregation", "geometric")
    if aggregation not in ("geometric", "arithmetic"):
        raise InvalidInput("method.aggregation must be 'geometric' or 'arithmetic'", field="method.aggregation")
    low, high = m.get("normalised_range", [1.0, 10.0])
    if not 0 <= low < high:
        raise InvalidInput("method.normalised_range must be [low, high] with 0 <= low < high",
                           field="method.normalised_range")
    return Method(
        name=m.get("name", "custom"), normalised_range=(float(low), float(high)), aggregation=aggregation,
        dong_fallback=m.get("dong_fallback"), dimensions={d: float(v.get("weight", 1.0)) for d, v in dims.items()},
        dimension_names_ko={d: v.get("name_ko", d) for d, v in dims.items()}, indicators=indicators,
        sensitivity=raw.get("sensitivity", {}), framework=m.get("framework", ""),
    )


# ── normalisation and aggregation ──────────────────────────────────────────────────────


def normalise(values: np.ndarray, directions: np.ndarray, low: float, high: float) -> tuple[np.ndarray, np.ndarray]:
    """Min-max per indicator onto [low, high], reversed where direction is -1.

    Returns (normalised [A, I] with NaN kept, usable [I]): an indicator is unusable when it has no
    value anywhere or the same value everywhere (it cannot tell areas apart).
    """
    with np.errstate(all="ignore"):
        lo, hi = np.nanmin(_all_nan_safe(values, np.inf), axis=0), np.nanmax(_all_nan_safe(values, -np.inf), axis=0)
    span = hi - lo
    usable = np.isfinite(span) & (span > 0)
    share = np.where(usable, (values - lo) / np.where(usable, span, 1.0), np.nan)
    share = np.where(directions < 0, 1.0 - share, share)
    return low + (high - low) * share, usable


def _all_nan_safe(values: np.ndarray, fill: float) -> np.ndarray:
    # nanmin/nanmax warn on all-NaN columns; give those a value that makes the span non-finite.
    empty = np.all(np.isnan(values), axis=0)
    return np.where(empty[None, :], fill, values)


def dimension_scores(z: np.ndarray, weights: np.ndarray, dims: np.ndarray, n_dims: int) -> np.ndarray:
    """Weighted mean of each area's available indicators per dimension: [S, A, D] for weights [S, I]."""
    present = ~np.isnan(z)
    z0 = np.where(present, z, 0.0)
    onehot = np.eye(n_dims)[dims]  # [I, D]
    w = weights[:, :, None] * onehot[None, :, :]  # [S, I, D]
    total = np.einsum("ai,sid->sad", z0, w)
    mass = np.einsum("ai,sid->sad", present.astype(float), w)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mass > 0, total / np.where(mass > 0, mass, 1.0), np.nan)


def combine(scores: np.ndarray, dim_weights: np.ndarray, aggregation: str) -> np.ndarray:
    """Risk from dimension scores [S, A, D] and dimension weights [S, D]; NaN if a dimension is NaN."""
    w = dim_weights[:, None, :] / dim_weights.sum(axis=1)[:, None, None]
    if aggregation == "geometric":
        return np.exp(np.sum(w * np.log(scores), axis=2))
    return np.sum(w * scores, axis=2)


@dataclass
class IndexResult:
    risk: np.ndarray  # [A], NaN when unranked
    rank: np.ndarray  # [A], 1 = highest risk; 0 when unranked
    scores: np.ndarray  # [A, D]
    normalised: np.ndarray  # [A, I]
    usable: np.ndarray  # [I]
    dimensions_used: list[str]


def compute(method: Method, values: np.ndarray) -> IndexResult:
    """The index for raw indicator values [A, I] (columns in method.indicators order)."""
    directions = np.array([i.direction for i in method.indicators])
    z, usable = normalise(values, directions, *method.normalised_range)
    z[:, ~usable] = np.nan
    weights = np.array([i.weight for i in method.indicators]) * usable
    dims = method.dimension_of()
    names = list(method.dimensions)
    scores = dimension_scores(z, weights[None, :], dims, len(names))[0]
    used = np.array([bool((weights[dims == d] > 0).any()) for d in range(len(names))])
    dim_weights = np.array([method.dimensions[n] for n in names]) * used
    risk = combine(scores[:, used][None], dim_weights[used][None], method.aggregation)[0] if used.any() \
        else np.full(len(values), np.nan)
    return IndexResult(risk, ranks(risk), scores, z, usable, [n for n, u in zip(names, used, strict=True) if u])


def ranks(risk: np.ndarray) -> np.ndarray:
    """1 for the highest risk; ties share the best rank; NaN (unranked) → 0."""
    out = np.zeros(len(risk), dtype=np.int64)
    ok = ~np.isnan(risk)
    if ok.any():
        out[ok] = rankdata(-risk[ok], method="min").astype(np.int64)
    return out


# ── sensitivity ─────────────────────────────────────────────────────────────────────────


def sensitivity(method: Method, result: IndexResult, *, samples: int | None = None,
                spread: float | None = None, seed: int | None = None) -> dict[str, Any]:
    """Rank stability under random weight changes (Monte Carlo) and with each indicator left out.

    Each sample multiplies every indicator and dimension weight by U(1 − spread, 1 + spread); we
    report Spearman's ρ between the baseline and perturbed rankings and each area's rank band.
    """
    cfg = method.sensitivity
    samples = samples or int(cfg.get("samples", 500))
    spread = float(cfg.get("weight_spread", 0.5) if spread is None else spread)
    rng = np.random.default_rng(int(cfg.get("seed", 0) if seed is None else seed))
    ok = ~np.isnan(result.risk)
    if ok.sum() < 3:
        return {"samples": 0, "note": "fewer than three ranked areas: no sensitivity analysis"}
    dims = method.dimension_of()
    names = list(method.dimensions)
    used = np.array([n in result.dimensions_used for n in names])
    base_w = np.array([i.weight for i in method.indicators]) * result.usable
    base_dw = np.array([method.dimensions[n] for n in names]) * used
    w = base_w[None, :] * rng.uniform(1 - spread, 1 + spread, (samples, len(base_w)))
    dw = base_dw[None, :] * rng.uniform(1 - spread, 1 + spread, (samples, len(base_dw)))
    risk = _risk_batch(result.normalised[ok], w, dw, dims, used, method.aggregation)
    sample_ranks = rankdata(-risk, axis=1, method="average")
    rho = _spearman(rankdata(-result.risk[ok], method="average"), sample_ranks)
    top_n = int(cfg.get("top_n", 10))
    base_top = result.rank[ok] <= top_n
    stay = np.mean((sample_ranks <= top_n)[:, base_top], axis=0) if base_top.any() else np.array([])
    return {
        "samples": samples, "weight_spread": spread, "method": "Monte Carlo weight perturbation; Spearman rho",
        "spearman_rho": {"median": _r(np.median(rho)), "p05": _r(np.percentile(rho, 5)), "min": _r(rho.min())},
        "rank_band": {"p05": np.percentile(sample_ranks, 5, axis=0), "p95": np.percentile(sample_ranks, 95, axis=0)},
        "top_n": top_n, "top_n_kept_share": _r(float(stay.mean())) if len(stay) else None,
        "leave_one_out": _leave_one_out(method, result, ok, base_w, base_dw, dims, used),
    }


def _risk_batch(z: np.ndarray, w: np.ndarray, dw: np.ndarray, dims: np.ndarray, used: np.ndarray,
                aggregation: str) -> np.ndarray:
    scores = dimension_scores(z, w, dims, len(used))[:, :, used]
    return combine(scores, dw[:, used], aggregation)


def _leave_one_out(method: Method, result: IndexResult, ok: np.ndarray, base_w: np.ndarray, base_dw: np.ndarray,
                   dims: np.ndarray, used: np.ndarray) -> dict[str, float]:
    """Spearman ρ against the baseline when each usable indicator is dropped (alone in its dimension: skipped)."""
    base = rankdata(-result.risk[ok], method="average")
    out = {}
    for j, indicator in enumerate(method.indicators):
        if not result.usable[j] or (base_w[dims == dims[j]] > 0).sum() < 2:
            continue
        w = base_w.copy()
        w[j] = 0.0
        risk = _risk_batch(result.normalised[ok], w[None], base_dw[None], dims, used, method.aggregation)
        if np.isnan(risk).any():
            continue  # some area had only this indicator in its dimension
        out[indicator.name] = _r(_spearman(base, rankdata(-risk, axis=1, method="average"))[0])
    return out


def _spearman(base_ranks: np.ndarray, sample_ranks: np.ndarray) -> np.ndarray:
    """Spearman's ρ of one ranking against each row of ``sample_ranks`` (Pearson of the ranks)."""
    b = base_ranks - base_ranks.mean()
    s = sample_ranks - sample_ranks.mean(axis=1, keepdims=True)
    return (s @ b) / (np.sqrt((s**2).sum(axis=1)) * np.sqrt((b**2).sum()))


def _r(value: float) -> float:
    return round(float(value), 4)
