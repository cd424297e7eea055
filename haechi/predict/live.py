"""Running the models on the integrated database: read recent observations, write forecasts.

The I/O half of the predictions: :mod:`river` and :mod:`crowd` hold the numeric logic. Each runner
returns the forecasts it stored, in ``observation.stored`` shape, for :func:`publish.announce`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Connection, bindparam, func, select
from sqlalchemy.engine import Engine

from haechi.core.clock import KST, as_utc, utcnow
from haechi.core.errors import InvalidInput
from haechi.store.schema import datastreams, observations, observed_properties, places, things

from . import crowd, flood, heat, river
from .publish import forecast_properties, forecast_stream, store_forecasts

RIVER_MODEL = "river-arx"
CROWD_MODEL = "crowd-trend"
HEAT_MODEL = "heat-apparent"
CROWD_WINDOW = timedelta(minutes=30)


def station_streams(conn: Connection, kinds: Iterable[str],
                    properties: Iterable[str]) -> dict[tuple[str, str, str], int]:
    """(place kind, place ref, property) → datastream id, for station places."""
    ds, op, th, pl = datastreams.c, observed_properties.c, things.c, places.c
    query = (select(pl.kind, pl.ref, op.code, ds.id).join(things, th.id == ds.thing_id)
             .join(places, pl.id == th.place_id).join(observed_properties, op.id == ds.observed_property_id)
             .where(pl.kind.in_(list(kinds)), op.code.in_(list(properties))).order_by(ds.id))
    return {(k, r, c): i for k, r, c, i in conn.execute(query)}


def recent(conn: Connection, stream_id: int, since: datetime, until: datetime) -> dict[datetime, float]:
    """Good readings of one stream in [since, until], by UTC time."""
    o = observations.c
    query = select(o.phenomenon_time, o.result).where(
        *_good(stream_id), o.phenomenon_time >= since, o.phenomenon_time <= until)
    return {as_utc(t): float(v) for t, v in conn.execute(query)}


def _good(stream_id: int):
    o = observations.c
    return (o.datastream_id == stream_id, o.result_quality == "good", o.result.is_not(None))


def at_times(conn: Connection, stream_id: int, times: list[datetime]) -> dict[datetime, float]:
    """Good readings of one stream at exactly ``times`` (a model's 10-minute grid). Only those rows
    are read, so a forecast costs the same whether the stream reports every 10 minutes or babbles
    at 200 Hz (reading its whole window made one run hold a million rows)."""
    o = observations.c
    query = select(o.phenomenon_time, o.result).where(*_good(stream_id), o.phenomenon_time.in_(times))
    return {as_utc(t): float(v) for t, v in conn.execute(query)}


def _grid(values: dict[datetime, float], times: list[datetime]) -> np.ndarray:
    return np.array([values.get(t, np.nan) for t in times])


def latest_time(conn: Connection, stream_id: int) -> datetime | None:
    t = conn.execute(select(func.max(observations.c.phenomenon_time))
                     .where(observations.c.datastream_id == stream_id)).scalar()
    return as_utc(t) if t is not None else None


def forecast_rivers(engine: Engine, *, issued_at: datetime | None = None,
                    ends: dict[int, datetime] | None = None) -> list[dict[str, Any]]:
    """Forecast every modelled gauge 1–3 h past its latest reading; store and return the new forecasts.

    ``ends`` (water-level datastream id → reading time) limits the run to those gauges, each
    forecast from that reading (the one that triggered it) rather than the newest stored.
    """
    issued_at = issued_at or utcnow()
    stored: list[dict[str, Any]] = []
    with engine.begin() as conn:
        streams = station_streams(conn, ("river_gauge", "dam"), ("water_level", "discharge"))
        release = streams.get(("dam", "paldang", "discharge"))
        upstream = streams.get(("river_gauge", river.UPSTREAM_FLOW, "discharge"))
        for gauge in river.GAUGES:
            level_id = streams.get(("river_gauge", gauge, "water_level"))
            if level_id is None or release is None or upstream is None or (ends is not None and level_id not in ends):
                continue
            end = as_utc(ends[level_id]) if ends is not None else latest_time(conn, level_id)
            if end is None:
                continue
            times = [end - river.STEP * k for k in range(river.LAGS_NEEDED, -1, -1)]
            series = river.Series(
                times, {gauge: _grid(at_times(conn, level_id, times), times)},
                _grid(_nearest_before(conn, release, times), times),
                _grid(_nearest_before(conn, upstream, times), times))
            ahead = river.forecast(series, gauge)
            for hours, value in ahead.items():
                if value is None:
                    continue
                target = forecast_stream(conn, level_id, f"forecast_water_level_{hours}h")
                stored += store_forecasts(conn, target, [(end + timedelta(hours=hours), value)], issued_at,
                                          RIVER_MODEL)
    return stored


def unforecast_gauges(engine: Engine) -> dict[int, datetime]:
    """Modelled gauges whose newest good reading no river forecast was made from: water-level
    datastream id → that reading's time. A forecast made from a reading is issued at its time, so a
    gauge is behind when its newest reading is later than its forecasts' newest issue."""
    codes = [c for c, p in forecast_properties().items() if p["forecast_of"] == "water_level"]
    o, ds, op = observations.c, datastreams.c, observed_properties.c
    behind: dict[int, datetime] = {}
    with engine.connect() as conn:
        streams = station_streams(conn, ("river_gauge",), ("water_level",))
        for gauge in river.GAUGES:
            level_id = streams.get(("river_gauge", gauge, "water_level"))
            newest = None if level_id is None else conn.execute(
                select(func.max(o.phenomenon_time)).where(*_good(level_id))).scalar()
            if newest is None:
                continue
            thing = select(ds.thing_id).where(ds.id == level_id).scalar_subquery()
            issued = conn.execute(
                select(func.max(o.result_time)).join(datastreams, ds.id == o.datastream_id)
                .join(observed_properties, op.id == ds.observed_property_id)
                .where(ds.thing_id == thing, op.code.in_(codes))).scalar()
            if issued is None or as_utc(issued) < as_utc(newest):
                behind[level_id] = as_utc(newest)
    return behind


def _nearest_before(conn: Connection, stream_id: int, times: list[datetime]) -> dict[datetime, float]:
    """Values on ``times``: each the latest reading at or before it within 10 minutes (dams report
    hourly-ish). One indexed row per time, whatever the stream's rate."""
    o = observations.c
    # Built once, run per time: building a statement costs more than running it.
    latest = (select(o.result).where(*_good(stream_id), o.phenomenon_time > bindparam("after"),
                                     o.phenomenon_time <= bindparam("upto"))
              .order_by(o.phenomenon_time.desc()).limit(1))
    out: dict[datetime, float] = {}
    for t in times:
        row = conn.execute(latest, {"after": t - river.STEP, "upto": t}).first()
        if row is not None:
            out[t] = float(row.result)
    return out


def forecast_crowds(engine: Engine, *, issued_at: datetime | None = None) -> list[dict[str, Any]]:
    """Forecast every crowd-density stream 10 minutes past its latest reading from its recent trend."""
    issued_at = issued_at or utcnow()
    stored: list[dict[str, Any]] = []
    ds, op = datastreams.c, observed_properties.c
    with engine.begin() as conn:
        ids = conn.execute(select(ds.id).join(observed_properties, op.id == ds.observed_property_id)
                           .where(op.code == "crowd_density")).scalars().all()
        for stream_id in ids:
            end = latest_time(conn, stream_id)
            if end is None:
                continue
            values = recent(conn, stream_id, end - CROWD_WINDOW, end)
            times = sorted(values)
            if len(times) < 2:
                continue
            minutes = np.array([(t - end).total_seconds() / 60 for t in times])
            d = np.array([values[t] for t in times])
            slope = float(np.polyfit(minutes, d, 1)[0])  # readings may be irregular: fit on real times
            for m in crowd.FORECAST_MINUTES:
                target = forecast_stream(conn, stream_id, f"forecast_crowd_density_{m}m")
                stored += store_forecasts(conn, target, [(end + timedelta(minutes=m), max(d[-1] + slope * m, 0.0))],
                                          issued_at, CROWD_MODEL)
    return stored


def forecast_heat(engine: Engine, source_stream_id: int, first_day: date, air_temperature_c: list[float],
                  relative_humidity_pct: list[float], *, issued_at: datetime | None = None) -> list[dict[str, Any]]:
    """Store each forecast day's maximum apparent temperature beside a station's temperature stream.

    The input is an hourly temperature/humidity forecast (e.g. KMA 단기예보) from 00 KST of
    ``first_day``; each day's value is stored at 12:00 KST of that day, where the warnings engine's
    daily window (KST calendar day) counts it.
    """
    issued_at = issued_at or utcnow()
    daily = heat.daily_max(heat.apparent(np.array(air_temperature_c), np.array(relative_humidity_pct)))[0]
    values = [(datetime.combine(first_day + timedelta(days=i), time(12), tzinfo=KST), float(v))
              for i, v in enumerate(daily)]
    with engine.begin() as conn:
        target = forecast_stream(conn, source_stream_id, "forecast_apparent_temperature_max")
        return store_forecasts(conn, target, values, issued_at, HEAT_MODEL)


def flood_now(engine: Engine, forecast_mm: list[float] | None = None, *, hours: int = 6,
              level: str = "dong") -> dict[str, Any]:
    """Flood risk per area from the rain observed in the last ``hours`` plus a short-range forecast.

    Observed: every ``rainfall`` stream (10-minute sums) on a 10-minute grid ending at the newest
    reading; an area takes the mean of its district's gauges, else the city mean (a gap counts as
    no rain, and the result says how many gauges reported). ``forecast_mm`` (mm per 10 minutes, the
    same everywhere) is appended after the observed steps. Reads only; stores nothing.
    """
    forecast = [float(v) for v in forecast_mm or []]
    if any(v < 0 or np.isnan(v) for v in forecast):
        raise InvalidInput("forecast rainfall must be numbers ≥ 0 mm per 10 minutes", field="forecast_mm")
    ds, op = datastreams.c, observed_properties.c
    with engine.connect() as conn:
        areas = flood.load_areas(conn, level=level, geometry=False)
        gauges = conn.execute(select(ds.id, ds.area_code).join(observed_properties, op.id == ds.observed_property_id)
                              .where(op.code == "rainfall")).all()
        ends = [t for t in (latest_time(conn, g.id) for g in gauges) if t is not None]
        if not ends and not forecast:
            raise InvalidInput("no rainfall observed and no forecast given", field="forecast_mm")
        steps = hours * 6
        end = max(ends) if ends else utcnow()
        times = [end - river.STEP * k for k in range(steps - 1, -1, -1)]
        observed = {g.id: _grid(at_times(conn, g.id, times), times) for g in gauges}
    by_district: dict[str, list[np.ndarray]] = {}
    for g in gauges:
        by_district.setdefault((g.area_code or "")[:5], []).append(observed[g.id])
    city = _mean(list(observed.values())) if observed else np.zeros(steps)
    rows = []
    for code in areas.codes:
        mine = by_district.get(code[:5])
        series = _mean(mine) if mine else city
        rows.append(np.concatenate([np.nan_to_num(series, nan=0.0), forecast]))
    result = flood.assess(np.vstack(rows), 10, areas)
    table = flood.risk_rows(areas, result)
    return {"summary": {"observed_until": end.isoformat(), "observed_steps": steps, "forecast_steps": len(forecast),
                        "rain_gauges": len(gauges), "areas": len(table),
                        "by_risk": {lv: sum(1 for r in table if r["risk"] == lv) for lv in flood.config().risk_levels}},
            "areas": table}


def _mean(series: list[np.ndarray]) -> np.ndarray:
    """Mean over gauges per step, ignoring gaps; NaN where no gauge reported."""
    stack = np.vstack(series)
    count = np.isfinite(stack).sum(axis=0)
    with np.errstate(invalid="ignore"):
        return np.where(count > 0, np.nansum(stack, axis=0) / np.maximum(count, 1), np.nan)
