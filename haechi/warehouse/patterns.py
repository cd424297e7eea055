"""Pattern mining over the marts: what an analyst would ask first.

- ``profiles``: diurnal (local hour) and seasonal (month) profile of a property, per station;
- ``warning_calendar``: when warnings are issued, by hazard, month and local hour (dust, heat …);
- ``trigger_intensity``: the hourly rainfall at which each district's warnings and floods occur;
- ``degrading_sensors``: sensors whose daily quality score falls (Mann–Kendall, Theil–Sen).
Pure statistics are separate from the DuckDB queries that feed them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
from scipy import stats

from .marts import config


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    result = con.execute(sql, list(params))
    names = [d[0] for d in result.description]
    return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


def _has(con: duckdb.DuckDBPyConnection, view: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM duckdb_views() WHERE view_name = ?", [view]).fetchall()[0][0])


# ── Diurnal and seasonal profiles ──────────────────────────────────────────────────────


def profiles(con: duckdb.DuckDBPyConnection, prop: str) -> dict[int, dict[str, list]]:
    """Per datastream of ``prop``: mean of good readings by local hour (0–23) and month (1–12)."""
    if not _has(con, "mart_station_hourly"):
        return {}
    hourly = _rows(con, """SELECT datastream_id, hour(timezone(current_setting('TimeZone'), hour)) AS h,
        sum(mean * n_good) / sum(n_good) AS mean FROM mart_station_hourly
        WHERE property = ? AND n_good > 0 GROUP BY ALL ORDER BY ALL""", [prop])
    monthly = _rows(con, """SELECT datastream_id, month(date) AS m, sum(mean * n_good) / sum(n_good) AS mean
        FROM mart_station_daily WHERE property = ? AND n_good > 0 GROUP BY ALL ORDER BY ALL""", [prop])
    out: dict[int, dict[str, list]] = {}
    for r in hourly:
        out.setdefault(r["datastream_id"], {"hour": [None] * 24, "month": [None] * 12})["hour"][r["h"]] = r["mean"]
    for r in monthly:
        out.setdefault(r["datastream_id"], {"hour": [None] * 24, "month": [None] * 12})["month"][r["m"] - 1] = r["mean"]
    return out


def amplitude(profile: Sequence[float | None]) -> tuple[float, int] | None:
    """(peak − trough, index of the peak) of a profile, ignoring empty slots."""
    known = [(v, i) for i, v in enumerate(profile) if v is not None]
    if len(known) < 2:
        return None
    peak, trough = max(known), min(known)
    return peak[0] - trough[0], peak[1]


# ── When warnings are issued ───────────────────────────────────────────────────────────


def warning_calendar(con: duckdb.DuckDBPyConnection, hazards: Sequence[str] | None = None) -> dict[str, list]:
    """Warnings (drills excluded, each once) by hazard and local month, and by hazard and local hour."""
    where = "NOT exercise" + (f" AND hazard IN ({', '.join('?' * len(hazards))})" if hazards else "")
    params = list(hazards or ())
    latest = f"""(SELECT * FROM warnings WHERE {where}
        QUALIFY row_number() OVER (PARTITION BY id ORDER BY updated_at DESC) = 1)"""
    local = "timezone(current_setting('TimeZone'), issued_at)"
    return {
        "by_month": _rows(con, f"SELECT hazard, month({local}) AS month, count(*) AS warnings FROM {latest} "
                               "GROUP BY ALL ORDER BY ALL", params),
        "by_hour": _rows(con, f"SELECT hazard, hour({local}) AS hour, count(*) AS warnings FROM {latest} "
                              "GROUP BY ALL ORDER BY ALL", params),
    }


# ── Rainfall at which warnings and floods happen ───────────────────────────────────────


def trigger_intensity(con: duckdb.DuckDBPyConnection, prop: str = "rainfall",
                      hazards: Sequence[str] = ("heavy_rain", "river_flood"),
                      disaster_kinds: Sequence[str] = ("flood", "heavy_rain", "typhoon")) -> list[dict[str, Any]]:
    """Per district: each warning's and flood's largest hourly ``prop`` (district mean station total)
    in the configured hours before it, summarised as count, minimum and median intensity."""
    if not _has(con, "mart_district_hourly"):
        return []
    hours = int(config()["triggers"]["hours_before"])
    events = f"""
      SELECT 'warning' AS what, w.id, coalesce(CASE WHEN length(w.area_code) >= 5 THEN left(w.area_code, 5) END,
             d.district_code) AS district_code, w.issued_at AS at
      FROM (SELECT * FROM warnings WHERE NOT exercise AND hazard IN ({', '.join('?' * len(hazards))})
            QUALIFY row_number() OVER (PARTITION BY id ORDER BY updated_at DESC) = 1) w
      LEFT JOIN dim_datastreams d USING (datastream_id)
      UNION ALL
      SELECT 'disaster', id, left(area_code, 5), started_at FROM disasters
      WHERE kind IN ({', '.join('?' * len(disaster_kinds))}) AND length(area_code) >= 5"""
    per_event = f"""
      SELECT e.what, e.id, e.district_code, max(h.total_per_station) AS intensity
      FROM ({events}) e JOIN mart_district_hourly h
        ON h.district_code = e.district_code AND h.property = ?
       AND h.hour > e.at - INTERVAL {hours} HOUR AND h.hour <= e.at
      GROUP BY ALL"""
    return _rows(con, f"""SELECT district_code, what, count(*) AS events, min(intensity) AS min_intensity,
        median(intensity) AS median_intensity FROM ({per_event}) GROUP BY ALL ORDER BY ALL""",
                 [*hazards, *disaster_kinds, prop])


# ── Degrading sensors ──────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Trend:
    datastream_id: int
    days: int
    tau: float
    p_value: float
    slope_per_day: float
    degrading: bool


def trend(days: Sequence[float], scores: Sequence[float], alpha: float) -> tuple[float, float, float, bool]:
    """Mann–Kendall (Kendall's tau of score against time) and the Theil–Sen slope per day."""
    x, y = np.asarray(days, dtype=float), np.asarray(scores, dtype=float)
    if np.ptp(y) == 0:  # a constant score has no trend (and tau is undefined)
        return 0.0, 1.0, 0.0, False
    tau, p = stats.kendalltau(x, y)
    slope = stats.theilslopes(y, x).slope
    return float(tau), float(p), float(slope), bool(tau < 0 and p < alpha and slope < 0)


def degrading_sensors(con: duckdb.DuckDBPyConnection) -> list[Trend]:
    """Every sensor with enough days of quality scores, its trend; degrading ones first."""
    if not _has(con, "mart_quality_daily"):
        return []
    settings = config()["degradation"]
    rows = _rows(con, """SELECT datastream_id, list(epoch(date) / 86400 ORDER BY date) AS days,
        list(score ORDER BY date) AS scores FROM mart_quality_daily GROUP BY datastream_id
        HAVING count(*) >= ? ORDER BY datastream_id""", [settings["min_days"]])
    trends = [Trend(r["datastream_id"], len(r["days"]), *trend(r["days"], r["scores"], settings["alpha"]))
              for r in rows]
    return sorted(trends, key=lambda t: (not t.degrading, t.slope_per_day))
