"""Forecasts as observations of their own datastreams, so charts show them and warnings judge them.

A forecast datastream sits on the same Thing as the stream it forecasts (a gauge's
``forecast_water_level_1h`` beside its ``water_level``), so the warnings engine places it in the same
area and gauge scope. Each forecast is an observation whose phenomenon time is the time it is *for*
and whose result time is when it was made (OGC SensorThings: phenomenonTime vs resultTime). The
"sensor" is the model, named in ``data/forecast_properties.csv``.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select, update

from haechi.core.clock import as_utc
from haechi.core.errors import InvalidInput
from haechi.core.events import Bus, Event
from haechi.model.events import OBSERVATION_STORED
from haechi.store import sensing
from haechi.store.schema import datastreams, observations, sensors

FORECASTS = Path(__file__).with_name("data") / "forecast_properties.csv"
SENSOR_NAME = "haechi forecast model"


@cache
def forecast_properties(path: Path = FORECASTS) -> dict[str, dict[str, str]]:
    with open(path, encoding="utf-8") as f:
        return {row["code"]: row for row in csv.DictReader(f)}


def ensure_properties(conn: Connection) -> dict[str, int]:
    """The forecast ObservedProperties (by code), created once; returns code → id."""
    sensing.save_observed_properties(conn, [
        {"code": p["code"], "name": p["name_en"], "definition": p["definition"],
         "description": f"{p['name_ko']} ({p['unit_symbol']}); model: {p['model']}"}
        for p in forecast_properties().values()])
    return sensing.observed_property_ids(conn)


def _model_sensor(conn: Connection) -> int:
    found = conn.execute(select(sensors.c.id).where(sensors.c.name == SENSOR_NAME)).scalar()
    return found or sensing.create_sensor(conn, {
        "name": SENSOR_NAME, "description": "Haechi's prediction models (docs/predictions.md)",
        "encoding_type": "text/html", "metadata": "docs/predictions.md"})


def forecast_stream(conn: Connection, source_stream_id: int, code: str) -> int:
    """The datastream holding forecasts ``code`` of the source stream's Thing, created on first use."""
    spec = forecast_properties().get(code)
    if spec is None:
        raise InvalidInput(f"unknown forecast property {code!r}; known: {', '.join(forecast_properties())}",
                           field="property")
    source = sensing.get_datastream(conn, source_stream_id)
    property_id = ensure_properties(conn)[code]
    ds = datastreams.c
    found = conn.execute(select(ds.id).where(ds.thing_id == source["thing_id"],
                                             ds.observed_property_id == property_id)).scalar()
    if found:
        return found
    return sensing.create_datastream(conn, {
        "name": f"{source['name']} — {spec['name_en']}", "description": spec["name_ko"],
        "thing_id": source["thing_id"], "sensor_id": _model_sensor(conn), "observed_property_id": property_id,
        "unit_name": spec["unit_name"], "unit_symbol": spec["unit_symbol"],
        "unit_definition": f"http://unitsofmeasure.org/ucum.html#{spec['unit_symbol']}",
        "area_code": source["area_code"],
        "properties": {**(source.get("properties") or {}), "forecast_of": source_stream_id,
                       "horizon_min": int(spec["horizon_min"]), "model": spec["model"]},
    })


def store_forecasts(conn: Connection, stream_id: int, values: Sequence[tuple[datetime, float]],
                    issued_at: datetime, model: str) -> list[dict[str, Any]]:
    """Write forecasts (valid time, value); returns the new and revised ones in ``observation.stored``
    shape, with their issue time as ``result_time``.

    A later forecast of a different value for a valid time already forecast replaces the earlier one
    (the newest issue is the one on record); the same value again, or an older issue, changes nothing.
    """
    rows = [{"datastream_id": stream_id, "phenomenon_time": t, "result": float(v), "result_time": issued_at,
             "parameters": {"model": model, "issued": issued_at.isoformat()}} for t, v in values]
    sensing.add_observations(conn, rows)
    o = observations.c
    for row in rows:
        conn.execute(update(observations).where(
            o.datastream_id == stream_id, o.phenomenon_time == row["phenomenon_time"],
            o.result_time < issued_at, o.result != row["result"]).values(result=row["result"], result_time=issued_at,
                                              parameters=row["parameters"]))
    times = [t for t, _ in values]
    stored = conn.execute(select(o.phenomenon_time, o.result, o.result_quality).where(
        o.datastream_id == stream_id, o.phenomenon_time.in_(times), o.result_time == issued_at)).all()
    return [{"datastream_id": stream_id, "phenomenon_time": as_utc(t).isoformat(), "result": r,
             "quality": q, "result_time": as_utc(issued_at).isoformat()} for t, r, q in sorted(stored)]


async def announce(bus: Bus | None, stored: list[dict[str, Any]], source: str = "predict") -> None:
    """Tell the warnings service about new forecasts, as the ingest pipeline does for readings."""
    if bus is not None and stored:
        await bus.publish(Event(OBSERVATION_STORED, {"source": source, "observations": stored}))
