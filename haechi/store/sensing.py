"""Sensing on the OGC SensorThings model: things, sensors, datastreams and their observations."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Table, delete, func, insert, select, update

from haechi.core.clock import as_utc, utcnow
from haechi.core.errors import NotFound

from .schema import (
    datastream_state,
    datastreams,
    features_of_interest,
    historical_locations,
    locations,
    observations,
    observed_properties,
    sensors,
    thing_locations,
    things,
)
from .sql import insert_new, row_dict, upsert


def _create(conn: Connection, table: Table, row: dict[str, Any]) -> int:
    return conn.execute(insert(table).values(**row)).inserted_primary_key[0]


def create_thing(conn: Connection, row: dict[str, Any], location_ids: Sequence[int] = ()) -> int:
    thing_id = _create(conn, things, row)
    for location_id in location_ids:
        conn.execute(insert(thing_locations).values(thing_id=thing_id, location_id=location_id))
    return thing_id


def create_location(conn: Connection, row: dict[str, Any]) -> int:
    geometry = row["location"]
    if geometry.get("type") == "Point":  # keep lon/lat beside the GeoJSON for bbox queries
        row = {**row, "lon": geometry["coordinates"][0], "lat": geometry["coordinates"][1]}
    return _create(conn, locations, row)


def create_sensor(conn: Connection, row: dict[str, Any]) -> int:
    return _create(conn, sensors, row)


def create_feature(conn: Connection, row: dict[str, Any]) -> int:
    return _create(conn, features_of_interest, row)


def create_datastream(conn: Connection, row: dict[str, Any]) -> int:
    return _create(conn, datastreams, row)


def save_observed_properties(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    return upsert(conn, observed_properties, rows, ["code"])


def observed_property_ids(conn: Connection) -> dict[str, int]:
    query = select(observed_properties.c.code, observed_properties.c.id)
    return {code: i for code, i in conn.execute(query)}


def get_datastream(conn: Connection, datastream_id: int) -> dict[str, Any]:
    row = conn.execute(select(datastreams).where(datastreams.c.id == datastream_id)).first()
    if row is None:
        raise NotFound(f"no datastream with id {datastream_id}")
    return row_dict(row)


def add_observations(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Store observations once each: a resend of (datastream, phenomenon time) is a no-op.

    Returns how many were new.
    """
    now = utcnow()
    rows = [{"received_at": now, "result_quality": "good", **r} for r in rows]
    return insert_new(conn, observations, rows, ["datastream_id", "phenomenon_time"])


def observations_of(
    conn: Connection, datastream_id: int, *, limit: int = 100, newest_first: bool = True
) -> list[dict[str, Any]]:
    order = observations.c.phenomenon_time.desc() if newest_first else observations.c.phenomenon_time
    query = select(observations).where(observations.c.datastream_id == datastream_id).order_by(order)
    return [row_dict(r) for r in conn.execute(query.limit(limit))]


def count_observations(conn: Connection) -> int:
    return conn.execute(select(func.count()).select_from(observations)).scalar_one()


# ── the ingest hot path ──────────────────────────────────────────────────────────────────

_INSERT_COLUMNS = ("datastream_id", "phenomenon_time", "result", "result_quality", "qc_reasons",
                   "result_time", "parameters", "received_at")


def write_observations(conn: Connection, rows: Sequence[tuple], received_at: datetime) -> int:
    """Insert observation tuples (``_INSERT_COLUMNS`` but the last, times aware) once each; returns how many were new.

    The ingest pipeline's hot path: one driver-level executemany, skipping SQLAlchemy's per-row
    processing, with the same idempotency key as ``add_observations``. JSON columns arrive as text.
    """
    if not rows:
        return 0
    columns = ", ".join(_INSERT_COLUMNS)
    if conn.dialect.name == "sqlite":
        sql = (f"INSERT INTO observations ({columns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
               "ON CONFLICT (datastream_id, phenomenon_time) DO NOTHING")
        at, text = _sqlite_time(received_at), _TimeText()
        rows = [(d, text[t], r, q, w, rt and text[rt], p, at) for d, t, r, q, w, rt, p in rows]
    else:
        sql = (f"INSERT INTO observations ({columns}) VALUES (%s, %s, %s, %s, %s::json, %s, %s::json, %s) "
               "ON CONFLICT (datastream_id, phenomenon_time) DO NOTHING")
        rows = [(*row, received_at) for row in rows]
    cursor = conn.connection.driver_connection.cursor()
    try:
        cursor.executemany(sql, rows)
        return cursor.rowcount
    finally:
        cursor.close()


class _TimeText(dict):
    """Memoised ``_sqlite_time`` for one batch: sensors report on the same minutes, so times repeat."""

    def __missing__(self, moment: datetime) -> str:
        self[moment] = text = _sqlite_time(moment)
        return text


def _sqlite_time(moment: datetime | None) -> str | None:
    """The text form SQLAlchemy's SQLite DateTime reads back: naive UTC with microseconds."""
    if moment is None:
        return None
    if moment.tzinfo is not UTC:
        moment = as_utc(moment)
    return moment.isoformat(" ", "microseconds")[:26]  # drop the "+00:00": the hot path's cheapest form


def stream_profiles(conn: Connection, ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """What ingest needs to know of each datastream: property, unit, district and position."""
    ds, op, loc = datastreams.c, observed_properties.c, locations.c
    first_location = (
        select(thing_locations.c.thing_id, func.min(thing_locations.c.location_id).label("location_id"))
        .group_by(thing_locations.c.thing_id).subquery()
    )
    query = (
        select(ds.id, ds.name, ds.unit_symbol, ds.area_code, op.code.label("property"), loc.lon, loc.lat)
        .join(observed_properties, op.id == ds.observed_property_id)
        .outerjoin(first_location, first_location.c.thing_id == ds.thing_id)
        .outerjoin(locations, loc.id == first_location.c.location_id)
    )
    if ids is not None:
        query = query.where(ds.id.in_(list(ids)))
    return [row_dict(r) for r in conn.execute(query)]


_STATE_COLUMNS = ("datastream_id", "phenomenon_time", "result", "result_quality", "qc_time", "qc_value",
                  "flat_count", "updated_at")


def save_stream_states(conn: Connection, rows: Sequence[tuple]) -> int:
    """Upsert live-state tuples (``_STATE_COLUMNS`` order, times aware): the hot path, at driver level."""
    if not rows:
        return 0
    columns = ", ".join(_STATE_COLUMNS)
    updates = ", ".join(f"{c} = excluded.{c}" for c in _STATE_COLUMNS[1:])
    if conn.dialect.name == "sqlite":
        marks = ", ".join("?" * len(_STATE_COLUMNS))
        text = _TimeText()  # a batch's states share their times: its QC time is mostly the reading's
        rows = [(d, text[t], r, q, qt and text[qt], qv, n, text[at]) for d, t, r, q, qt, qv, n, at in rows]
    else:
        marks = ", ".join(["%s"] * len(_STATE_COLUMNS))
    # Several writers (workers) may race: a reading never replaces a newer one.
    sql = (f"INSERT INTO datastream_state ({columns}) VALUES ({marks}) ON CONFLICT (datastream_id) "
           f"DO UPDATE SET {updates} WHERE datastream_state.phenomenon_time <= excluded.phenomenon_time")
    cursor = conn.connection.driver_connection.cursor()
    try:
        cursor.executemany(sql, rows)
    finally:
        cursor.close()
    return len(rows)


def stream_states(conn: Connection) -> list[dict[str, Any]]:
    return [row_dict(r) for r in conn.execute(select(datastream_state))]


# ── SensorThings API writes and look-ups (OGC 18-088 §10 "Create-Update-Delete") ──────────

#: Rows that must go with a deleted row because the schema does not cascade to them:
#: 18-088 deletes a Sensor's or ObservedProperty's Datastreams and a FeatureOfInterest's Observations.
_DELETED_WITH = {
    "sensors": ((datastreams, "sensor_id"),),
    "observed_properties": ((datastreams, "observed_property_id"),),
    "features_of_interest": ((observations, "feature_of_interest_id"),),
}


def create_observed_property(conn: Connection, row: dict[str, Any]) -> int:
    """An ObservedProperty outside the catalogue (its ``code`` stays empty)."""
    return _create(conn, observed_properties, row)


def create_historical_location(conn: Connection, row: dict[str, Any]) -> int:
    return _create(conn, historical_locations, row)


def locate_thing(conn: Connection, thing_id: int, location_ids: Sequence[int], at: datetime) -> None:
    """Make ``location_ids`` the Thing's current Locations and record the move in its history.

    18-088 §8.2.3: a Thing's Locations are its last known ones; each change adds HistoricalLocations.
    """
    conn.execute(delete(thing_locations).where(thing_locations.c.thing_id == thing_id))
    for location_id in dict.fromkeys(location_ids):
        conn.execute(insert(thing_locations).values(thing_id=thing_id, location_id=location_id))
        create_historical_location(conn, {"thing_id": thing_id, "location_id": location_id, "time": at})


def row_exists(conn: Connection, table: Table, row_id: int) -> bool:
    return conn.execute(select(table.c.id).where(table.c.id == row_id)).first() is not None


def missing_ids(conn: Connection, table: Table, ids: Sequence[int]) -> set[int]:
    """Which of ``ids`` have no row in ``table``."""
    wanted = set(ids)
    found = set(conn.execute(select(table.c.id).where(table.c.id.in_(sorted(wanted)))).scalars()) if wanted else set()
    return wanted - found


def update_row(conn: Connection, table: Table, row_id: int, values: dict[str, Any]) -> bool:
    """Change columns of one row of a sensing table (a Location keeps lon/lat beside its GeoJSON)."""
    if table is locations and "location" in values:
        geometry = values["location"]
        point = geometry.get("coordinates") if geometry.get("type") == "Point" else None
        values = {**values, "lon": point[0] if point else None, "lat": point[1] if point else None}
    if not values:
        return row_exists(conn, table, row_id)
    return conn.execute(update(table).where(table.c.id == row_id).values(**values)).rowcount > 0


def delete_row(conn: Connection, table: Table, row_id: int) -> bool:
    """Delete one row of a sensing table with what 18-088 deletes along with it; False if absent."""
    for dependent, column in _DELETED_WITH.get(table.name, ()):
        conn.execute(delete(dependent).where(dependent.c[column] == row_id))
    return conn.execute(delete(table).where(table.c.id == row_id)).rowcount > 0


def streams_of(conn: Connection, table: Table, row_id: int) -> list[int]:
    """The datastreams whose ingest profile depends on this row (to refresh cached profiles)."""
    ds = datastreams.c
    column = {"datastreams": ds.id, "things": ds.thing_id, "sensors": ds.sensor_id,
              "observed_properties": ds.observed_property_id}.get(table.name)
    if table is locations:
        things_here = select(thing_locations.c.thing_id).where(thing_locations.c.location_id == row_id)
        return list(conn.execute(select(ds.id).where(ds.thing_id.in_(things_here))).scalars())
    if column is None:
        return []
    return list(conn.execute(select(ds.id).where(column == row_id)).scalars())


def current_location_of_stream(conn: Connection, datastream_id: int) -> dict[str, Any] | None:
    """The newest Location of the datastream's Thing, or None when it has none."""
    ds, tl, loc = datastreams.c, thing_locations.c, locations.c
    query = (
        select(locations).join(thing_locations, tl.location_id == loc.id).join(datastreams, ds.thing_id == tl.thing_id)
        .where(ds.id == datastream_id).order_by(loc.id.desc()).limit(1)
    )
    row = conn.execute(query).first()
    return None if row is None else row_dict(row)


def feature_like(conn: Connection, row: dict[str, Any]) -> int | None:
    """An existing FeatureOfInterest with the same name, encoding and feature, to reuse instead of copying."""
    foi = features_of_interest.c
    candidates = conn.execute(
        select(foi.id, foi.feature).where(foi.name == row["name"], foi.encoding_type == row["encoding_type"])
        .order_by(foi.id)
    )
    return next((i for i, feature in candidates if feature == row["feature"]), None)


def observation_ids(conn: Connection, datastream_id: int, times: Sequence[datetime]) -> dict[datetime, int]:
    """Stored observation ids of one datastream by phenomenon time (UTC), for the given times."""
    o = observations.c
    found: dict[datetime, int] = {}
    unique = list(dict.fromkeys(as_utc(t) for t in times))
    for start in range(0, len(unique), 500):
        chunk = unique[start:start + 500]
        query = select(o.phenomenon_time, o.id).where(o.datastream_id == datastream_id, o.phenomenon_time.in_(chunk))
        found.update({as_utc(t): i for t, i in conn.execute(query)})
    return found


def attach_feature(conn: Connection, observation_ids: Sequence[int], feature_id: int) -> int:
    """Give observations without a FeatureOfInterest this one; returns how many changed."""
    o = observations.c
    changed = 0
    ids = list(observation_ids)
    for start in range(0, len(ids), 500):
        query = (update(observations).where(o.id.in_(ids[start:start + 500]), o.feature_of_interest_id.is_(None))
                 .values(feature_of_interest_id=feature_id))
        changed += conn.execute(query).rowcount
    return changed
