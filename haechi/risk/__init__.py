"""Regional risk index per district and dong (지역 위험도 지수): hazard × exposure × vulnerability ×
lack of coping capacity, with its method in ``method.toml`` and a sensitivity analysis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Connection

from .data import RawTable, gather
from .index import IndexResult, Method, compute, load_method, sensitivity

__all__ = ["assess", "geojson", "load_method"]


def assess(conn: Connection, level: str = "dong", *, method: Method | Path | str | None = None,
           simulation_ids: dict[str, int] | None = None, with_sensitivity: bool = True) -> dict[str, Any]:
    """The ranked risk table of ``level`` with the method, missing indicators and sensitivity."""
    method = method if isinstance(method, Method) else load_method(method)
    raw = gather(conn, method, level, simulation_ids)
    result = compute(method, raw.values)
    analysis = sensitivity(method, result) if with_sensitivity else None
    return _table(method, raw, result, analysis)


def _table(method: Method, raw: RawTable, result: IndexResult, analysis: dict[str, Any] | None) -> dict[str, Any]:
    names = [i.name for i in method.indicators]
    dims = list(method.dimensions)
    ranked_index = np.flatnonzero(~np.isnan(result.risk))
    band = {}
    if analysis and analysis.get("samples"):
        band = {int(a): (float(lo), float(hi)) for a, lo, hi in
                zip(ranked_index, analysis["rank_band"]["p05"], analysis["rank_band"]["p95"], strict=True)}
        analysis = {k: v for k, v in analysis.items() if k != "rank_band"}
    rows = []
    for a, code in enumerate(raw.areas.codes):
        missing_dims = [d for k, d in enumerate(dims) if d in result.dimensions_used and np.isnan(result.scores[a, k])]
        rows.append({
            "code": code, "name_ko": raw.areas.names[a], "parent_code": raw.areas.parents[a],
            "rank": int(result.rank[a]) or None, "risk": _round(result.risk[a]),
            **{d: _round(result.scores[a, k]) for k, d in enumerate(dims)},
            "rank_band_90": [round(band[a][0], 1), round(band[a][1], 1)] if a in band else None,
            "indicators": {n: _significant(raw.values[a, j]) for j, n in enumerate(names)},
            "from_district": [n for j, n in enumerate(names) if raw.from_district[a, j]],
            "unranked_reason": f"no data for {', '.join(missing_dims)}" if missing_dims else None,
        })
    rows.sort(key=lambda r: (r["rank"] is None, r["rank"] or 0, r["code"]))
    missing = [{"indicator": n, "dimension": method.indicators[j].dimension, "reason": _why_unused(raw, j, n)}
               for j, n in enumerate(names) if not result.usable[j]]
    return {
        "level": raw.level,
        "method": {
            "name": method.name, "framework": method.framework, "aggregation": method.aggregation,
            "normalised_range": list(method.normalised_range), "dimensions": method.dimensions,
            "dimensions_used": result.dimensions_used,
            "dimensions_missing": [d for d in dims if d not in result.dimensions_used],
            "indicators": [{"name": i.name, "dimension": i.dimension, "weight": i.weight, "direction": i.direction,
                            "used": bool(result.usable[j]), "about": i.about, "data": raw.notes.get(i.name)}
                           for j, i in enumerate(method.indicators)],
            "simulations": raw.simulations,
        },
        "missing": missing,
        "areas": rows,
        "sensitivity": analysis,
    }


def geojson(table: dict[str, Any], geometries: dict[str, Any]) -> dict[str, Any]:
    """A choropleth layer: each area's geometry with its rank, risk and dimension scores."""
    keep = ("code", "name_ko", "parent_code", "rank", "risk", "hazard", "exposure", "vulnerability",
            "lack_of_coping", "rank_band_90", "unranked_reason")
    return {"type": "FeatureCollection",
            "properties": {"level": table["level"], "method": table["method"]["name"],
                           "missing": [m["indicator"] for m in table["missing"]]},
            "features": [{"type": "Feature", "geometry": geometries.get(r["code"]),
                          "properties": {k: r.get(k) for k in keep}} for r in table["areas"]]}


def _round(value: float, digits: int = 3) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), digits)


def _significant(value: float, digits: int = 6) -> float | None:
    return None if not np.isfinite(value) else float(f"{value:.{digits}g}")


def _why_unused(raw: RawTable, j: int, name: str) -> str:
    known = int(np.isfinite(raw.values[:, j]).sum())
    if known == 0:
        return raw.notes.get(name) or "no data"
    if known == 1:
        return "a value for only one area: cannot tell areas apart"
    return "the same value in every area: cannot tell areas apart"
