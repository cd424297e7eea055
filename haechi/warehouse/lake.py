"""The Parquet lake: observations and events exported incrementally from the integrated DB.

Layout (hive-style, readable by DuckDB, Spark, Trino and pyarrow alike)::

    LAKE/observations/date=2020-08-06/property=water_level/part-000000000000.parquet
    LAKE/warnings/date=2020-08-06/hazard=river_flood/part-….parquet
    LAKE/alerts/…/hazard=…   LAKE/disasters/…/kind=…   LAKE/responses/…/kind=… (arrived dispatches)
    LAKE/dimensions/datastreams.parquet, areas.parquet   (snapshots, replaced whole)

``date`` is the city's local date (KST), as analysts read days; the timestamps inside are UTC.
Partition columns live in the path only, as hive layouts expect.

Exactly-once without a transaction spanning DB and files: each dataset has a watermark (the
cursor of the last exported row) in ``lake_watermarks``. A chunk is the rows after the watermark,
in cursor order; its files are named after the watermark the chunk started from, written to a
temporary name and renamed into place, and only then is the watermark advanced. A crash before
the advance leaves files that the re-run overwrites with the same names, so nothing is doubled.

Rows committed out of id order (PostgreSQL): ids are drawn when a row is inserted, not when its
transaction commits, so a long import holding id 100 can commit after id 101 was committed and
exported; a plain "after the watermark" cursor would never look back at 100. So on PostgreSQL an
export first settles a horizon (``settled_horizon``):

1. read the table's id sequence: every id drawn so far is at most this value;
2. list the transactions holding a write lock (RowExclusiveLock) on the table: an INSERT or COPY
   takes that lock before it draws an id and keeps it until its transaction ends, so every
   transaction that drew one of those ids and is not yet finished is in this list;
3. wait until those transactions have ended (committed or rolled back);

then export only rows with ids up to the value read in step 1: each of them is now either visible
or gone for good. Rows above it wait for the next export. Transaction ids (``pg_current_snapshot``)
would not do: an INSERT draws its row id before the transaction gets its transaction id. No clock
and no lag is involved; the cost is that a transaction still writing after ``[lake]
writer_wait_s`` (warehouse.toml) postpones that dataset to the next export (``postponed``).
Assumes the id sequence hands out values in order (no per-session ``CACHE``; PostgreSQL's default
and Haechi's migrations). SQLite needs none of this: one writer at a time, committed in id order.

The time cursors (warnings by ``updated_at``, responses by ``arrived_at``) get step 3 as well, so
a change still being written when the export starts is not passed over. Their times are set by
the application, not at commit, so they keep a known limit: an arrival recorded late with an
earlier ``arrived_at`` than one already exported is skipped (docs/warehouse.md).
"""

from __future__ import annotations

import os
import time
import tomllib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Connection, Engine, and_, func, or_, select, text

from haechi.core.clock import KST, as_utc, utcnow
from haechi.model.catalogue import catalogue
from haechi.store.schema import (
    admin_areas,
    alerts,
    datastreams,
    disasters,
    dispatches,
    incidents,
    lake_watermarks,
    locations,
    observations,
    observed_properties,
    places,
    sensors,
    thing_locations,
    things,
    warnings,
)
from haechi.store.sql import upsert

UTC_TS = pa.timestamp("us", tz="UTC")
CHUNK_ROWS = 200_000
HERE = Path(__file__).parent


@cache
def config() -> dict:
    """The warehouse's settings (warehouse.toml), each with its reason there."""
    with open(HERE / "warehouse.toml", "rb") as f:
        return tomllib.load(f)


@dataclass(frozen=True)
class Dataset:
    """One exported dataset: its rows after a cursor, its Arrow schema and partition keys.

    ``by_time``: the cursor is (time column, id) because rows change after insertion (warnings
    are updated and cancelled); each change is exported again as a new version of the row.
    """

    name: str
    schema: pa.Schema
    partition: str  # the second partition key (the first is the local date)
    date_column: str
    select: Callable[[], Any]
    by_time: str | None = None


def _observations_query():
    o, ds, op = observations.c, datastreams.c, observed_properties.c
    return (select(o.id, o.datastream_id, op.code.label("property"), o.phenomenon_time, o.result,
                   o.result_quality, o.received_at)
            .join(datastreams, ds.id == o.datastream_id)
            .join(observed_properties, op.id == ds.observed_property_id), observations.c.id, None)


def _warnings_query():
    w = warnings.c
    return (select(w.id, w.hazard, w.area_key, w.area_code, w.level, w.crisis_level, w.status, w.value,
                   w.unit, w.criterion, w.datastream_id, w.exercise, w.issued_at, w.updated_at,
                   w.cancelled_at), w.id, w.updated_at)


def _alerts_query():
    a = alerts.c  # created_by names a person or token: never exported
    return (select(a.id, a.identifier, a.sent, a.status, a.msg_type, a.warning_id, a.hazard, a.crisis_level,
                   a.severity, a.urgency, a.certainty, a.area_codes, a.expires), a.id, None)


def _disasters_query():
    d = disasters.c
    return (select(d.id, d.category, d.kind, d.title, d.started_at, d.ended_at, d.area_code, d.lon, d.lat,
                   d.deaths, d.injuries, d.missing, d.evacuated, d.damage_krw, d.source), d.id, None)


def _responses_query():
    """Arrived 119 dispatches with their incident's kind and district: nothing about who or where exactly."""
    d, i = dispatches.c, incidents.c
    return (select(d.id, d.incident_id, i.kind, i.severity, i.center, i.area_code, i.opened_at, d.dispatched_at,
                   d.arrived_at, d.response_s, d.golden_time_s, d.met_golden_time)
            .join(incidents, i.id == d.incident_id).where(d.arrived_at.isnot(None)), d.id, d.arrived_at)


DATASETS: dict[str, Dataset] = {
    d.name: d for d in (
        Dataset("observations", pa.schema([
            ("id", pa.int64()), ("datastream_id", pa.int64()), ("property", pa.string()),
            ("phenomenon_time", UTC_TS), ("result", pa.float64()), ("result_quality", pa.string()),
            ("received_at", UTC_TS)]), "property", "phenomenon_time", _observations_query),
        Dataset("warnings", pa.schema([
            ("id", pa.int64()), ("hazard", pa.string()), ("area_key", pa.string()), ("area_code", pa.string()),
            ("level", pa.string()), ("crisis_level", pa.string()), ("status", pa.string()),
            ("value", pa.float64()), ("unit", pa.string()), ("property", pa.string()),
            ("datastream_id", pa.int64()), ("exercise", pa.bool_()), ("issued_at", UTC_TS),
            ("updated_at", UTC_TS), ("cancelled_at", UTC_TS)]), "hazard", "issued_at", _warnings_query,
            by_time="updated_at"),
        Dataset("alerts", pa.schema([
            ("id", pa.int64()), ("identifier", pa.string()), ("sent", UTC_TS), ("status", pa.string()),
            ("msg_type", pa.string()), ("warning_id", pa.int64()), ("hazard", pa.string()),
            ("crisis_level", pa.string()), ("severity", pa.string()), ("urgency", pa.string()),
            ("certainty", pa.string()), ("area_codes", pa.list_(pa.string())), ("expires", UTC_TS)]),
            "hazard", "sent", _alerts_query),
        Dataset("disasters", pa.schema([
            ("id", pa.int64()), ("category", pa.string()), ("kind", pa.string()), ("title", pa.string()),
            ("started_at", UTC_TS), ("ended_at", UTC_TS), ("area_code", pa.string()), ("lon", pa.float64()),
            ("lat", pa.float64()), ("deaths", pa.int64()), ("injuries", pa.int64()), ("missing", pa.int64()),
            ("evacuated", pa.int64()), ("damage_krw", pa.int64()), ("source", pa.string())]),
            "kind", "started_at", _disasters_query),
        Dataset("responses", pa.schema([
            ("id", pa.int64()), ("incident_id", pa.int64()), ("kind", pa.string()), ("severity", pa.string()),
            ("center", pa.string()), ("area_code", pa.string()), ("opened_at", UTC_TS), ("dispatched_at", UTC_TS),
            ("arrived_at", UTC_TS), ("response_s", pa.float64()), ("golden_time_s", pa.float64()),
            ("met_golden_time", pa.bool_())]), "kind", "dispatched_at", _responses_query, by_time="arrived_at"),
    )
}

DIMENSIONS = {
    "datastreams": pa.schema([
        ("datastream_id", pa.int64()), ("name", pa.string()), ("property", pa.string()),
        ("unit_symbol", pa.string()), ("thing_id", pa.int64()), ("station", pa.string()),
        ("place_kind", pa.string()), ("place_ref", pa.string()), ("source", pa.string()),
        ("area_code", pa.string()), ("district_code", pa.string()), ("lon", pa.float64()),
        ("lat", pa.float64()), ("interval_s", pa.float64())]),
    "areas": pa.schema([
        ("code", pa.string()), ("level", pa.string()), ("parent_code", pa.string()), ("name_ko", pa.string()),
        ("name_en", pa.string()), ("area_km2", pa.float64())]),
}


@dataclass
class ExportResult:
    dataset: str
    rows: int = 0
    files: int = 0
    postponed: bool = False  # writers to its table were still open after the wait: next export


# ── Pure: rows to partitioned Arrow tables ─────────────────────────────────────────────


def district_of(area_code: str | None) -> str | None:
    """The 5-digit district (시군구) code of an administrative code of any length, if it has one."""
    return area_code[:5] if area_code and len(area_code) >= 5 else None


def local_date(moment: datetime) -> str:
    return as_utc(moment).astimezone(KST).date().isoformat()


def _value(name: str, value: Any) -> Any:
    if isinstance(value, datetime):
        return as_utc(value)
    return value


def to_arrow(dataset: Dataset, rows: list[dict[str, Any]]) -> pa.Table:
    columns = {f.name: [_value(f.name, r.get(f.name)) for r in rows] for f in dataset.schema}
    return pa.Table.from_pydict(columns, schema=dataset.schema)


def partitions(dataset: Dataset, rows: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Rows grouped by (local date, partition value), in their original order."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        key = (local_date(row[dataset.date_column]), str(row.get(dataset.partition) or "unknown"))
        groups.setdefault(key, []).append(row)
    return groups


def _row(dataset: Dataset, raw) -> dict[str, Any]:
    row = dict(raw._mapping)
    if dataset.name == "warnings":
        row["property"] = (row.pop("criterion") or {}).get("property")
    return row


# ── I/O ───────────────────────────────────────────────────────────────────────────────


def write_atomically(table: pa.Table, target: Path) -> None:
    """Write ``target`` whole or not at all: a temporary file in the same folder, then a rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        pq.write_table(table, temporary, compression="zstd")
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def watermark(conn: Connection, name: str) -> dict[str, Any]:
    row = conn.execute(select(lake_watermarks).where(lake_watermarks.c.dataset == name)).first()
    if row is None:
        return {"dataset": name, "last_id": 0, "last_time": None, "rows_exported": 0, "files_written": 0}
    return dict(row._mapping)


def watermarks(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [watermark(conn, name) for name in DATASETS]


def _after(query, dataset: Dataset, mark: dict[str, Any], up_to: int | None = None):
    """``query`` restricted to the rows after the watermark (and ids up to ``up_to``), in cursor order."""
    _, id_column, time_column = dataset.select()
    if up_to is not None:
        query = query.where(id_column <= up_to)
    if time_column is None:
        return query.where(id_column > mark["last_id"]).order_by(id_column)
    if mark["last_time"] is not None:
        after = as_utc(mark["last_time"])
        query = query.where(or_(time_column > after, and_(time_column == after, id_column > mark["last_id"])))
    return query.order_by(time_column, id_column)


def _chunk(conn: Connection, dataset: Dataset, mark: dict[str, Any], limit: int,
           up_to: int | None) -> list[dict[str, Any]]:
    query = _after(dataset.select()[0], dataset, mark, up_to)
    return [_row(dataset, r) for r in conn.execute(query.limit(limit))]


def chunk_key(mark: dict[str, Any]) -> str:
    """The file name stem of the chunk after ``mark``: the same after a crash, so a re-run overwrites."""
    if mark["last_time"] is None:
        return f"part-{mark['last_id']:012d}"
    stamp = as_utc(mark["last_time"]).strftime("%Y%m%dT%H%M%S%f")
    return f"part-{stamp}-{mark['last_id']:012d}"


def partition_dir(lake: Path, dataset: Dataset, day: str, value: str) -> Path:
    return lake / dataset.name / f"date={day}" / f"{dataset.partition}={quote(value, safe='')}"


class WritersStillOpen(Exception):
    """Transactions writing to a dataset's table did not end within the wait."""


def settled_horizon(engine: Engine, dataset: Dataset, *, wait_s: float) -> int | None:
    """The highest id an export of ``dataset`` may reach now (module docstring); None: no limit.

    On PostgreSQL, waits up to ``wait_s`` seconds for the transactions writing to the dataset's
    table when called, and raises ``WritersStillOpen`` if some are still open then.
    """
    if engine.dialect.name != "postgresql":
        return None
    table = dataset.select()[1].table.name
    with engine.connect() as conn:
        drawn = _last_drawn_id(conn, table) if dataset.by_time is None else None
        writers = _writers(conn, table)  # after the sequence: whoever drew an id read above is listed
        conn.rollback()  # hold nothing while waiting
        _wait_until_ended(conn, writers, wait_s, table)
    return drawn


def _last_drawn_id(conn: Connection, table: str) -> int:
    sequence = conn.execute(text("SELECT pg_get_serial_sequence(:table, 'id')"), {"table": table}).scalar_one()
    if sequence is None:
        raise LookupError(f"{table}.id draws from no sequence: the export cannot bound what is in flight")
    return conn.execute(text("SELECT coalesce(pg_sequence_last_value(CAST(:sequence AS regclass)), 0)"),
                        {"sequence": sequence}).scalar_one()


def _writers(conn: Connection, table: str) -> list[str]:
    """Virtual ids of the other transactions that may be inserting into ``table`` (pg_locks is not MVCC)."""
    return list(conn.execute(text(
        "SELECT DISTINCT virtualtransaction FROM pg_locks WHERE locktype = 'relation' "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND relation = to_regclass(:table) AND mode = 'RowExclusiveLock' "
        "AND pid IS DISTINCT FROM pg_backend_pid()"), {"table": table}).scalars())


def _wait_until_ended(conn: Connection, transactions: list[str], wait_s: float, table: str) -> None:
    deadline = time.monotonic() + wait_s
    while transactions:
        time.sleep(0.05)
        transactions = list(conn.execute(text(  # a transaction holds locks until it ends
            "SELECT DISTINCT virtualtransaction FROM pg_locks WHERE virtualtransaction = ANY(:ids)"),
            {"ids": transactions}).scalars())
        conn.rollback()
        if transactions and time.monotonic() >= deadline:
            raise WritersStillOpen(f"{len(transactions)} transaction(s) still writing to {table}")


def export_dataset(engine: Engine, lake: Path, dataset: Dataset, *, chunk_rows: int = CHUNK_ROWS,
                   writer_wait_s: float | None = None, progress: Callable[[int], None] = lambda n: None,
                   after_files: Callable[[], None] = lambda: None) -> ExportResult:
    """Export every settled row after the dataset's watermark, chunk by chunk; returns what was written.

    ``writer_wait_s``: how long to wait for open writers on PostgreSQL (default: warehouse.toml).
    ``after_files`` runs between writing a chunk's files and advancing the watermark (tests use it
    to simulate a crash at the worst moment).
    """
    result = ExportResult(dataset.name)
    wait_s = config()["lake"]["writer_wait_s"] if writer_wait_s is None else writer_wait_s
    try:
        up_to = settled_horizon(engine, dataset, wait_s=wait_s)
    except WritersStillOpen:
        result.postponed = True
        return result
    while True:
        with engine.connect() as conn:
            mark = watermark(conn, dataset.name)
            rows = _chunk(conn, dataset, mark, chunk_rows, up_to)
        if not rows:
            return result
        stem = chunk_key(mark)
        groups = partitions(dataset, rows)
        for (day, value), group in groups.items():
            write_atomically(to_arrow(dataset, group).drop_columns([dataset.partition]),
                             partition_dir(lake, dataset, day, value) / f"{stem}.parquet")
        after_files()
        last = rows[-1]
        with engine.begin() as conn:
            upsert(conn, lake_watermarks, [{
                "dataset": dataset.name, "last_id": last["id"],
                "last_time": as_utc(last[dataset.by_time]) if dataset.by_time else None,
                "rows_exported": mark["rows_exported"] + len(rows),
                "files_written": mark["files_written"] + len(groups), "updated_at": utcnow()}], ["dataset"])
        result.rows += len(rows)
        result.files += len(groups)
        progress(len(rows))


def export_dimensions(engine: Engine, lake: Path) -> dict[str, int]:
    """Replace the dimension snapshots (small: one row per datastream and per area)."""
    with engine.connect() as conn:
        tables = {"datastreams": _datastream_dimension(conn), "areas": _area_dimension(conn)}
    for name, table in tables.items():
        write_atomically(table, lake / "dimensions" / f"{name}.parquet")
    return {name: t.num_rows for name, t in tables.items()}


def _datastream_dimension(conn: Connection) -> pa.Table:
    ds, op, th, pl, se, lo = (datastreams.c, observed_properties.c, things.c, places.c, sensors.c,
                              locations.c)
    first_location = (select(thing_locations.c.thing_id, func.min(thing_locations.c.location_id).label("lid"))
                      .group_by(thing_locations.c.thing_id).subquery())
    query = (select(ds.id.label("datastream_id"), ds.name, op.code.label("property"), ds.unit_symbol,
                    ds.thing_id, th.name.label("station"), pl.kind.label("place_kind"),
                    pl.ref.label("place_ref"), se.name.label("source"),
                    func.coalesce(ds.area_code, pl.area_code).label("area_code"),
                    func.coalesce(lo.lon, pl.lon).label("lon"), func.coalesce(lo.lat, pl.lat).label("lat"))
             .join(observed_properties, op.id == ds.observed_property_id)
             .join(things, th.id == ds.thing_id).join(sensors, se.id == ds.sensor_id)
             .outerjoin(places, pl.id == th.place_id)
             .outerjoin(first_location, first_location.c.thing_id == th.id)
             .outerjoin(locations, lo.id == first_location.c.lid)
             .order_by(ds.id))
    known = catalogue()
    rows = []
    for r in conn.execute(query):
        row = dict(r._mapping)
        row["district_code"] = district_of(row["area_code"])
        spec = known.get(row["property"])
        row["interval_s"] = spec.limits.interval_s if spec else None
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=DIMENSIONS["datastreams"])


def _area_dimension(conn: Connection) -> pa.Table:
    a = admin_areas.c
    rows = [dict(r._mapping) for r in conn.execute(
        select(a.code, a.level, a.parent_code, a.name_ko, a.name_en, a.area_km2).order_by(a.code))]
    return pa.Table.from_pylist(rows, schema=DIMENSIONS["areas"])


def export(engine: Engine, lake: Path, names: list[str] | None = None, *, chunk_rows: int = CHUNK_ROWS,
           writer_wait_s: float | None = None,
           progress: Callable[[str, int], None] = lambda name, n: None) -> list[ExportResult]:
    """Export every dataset (or ``names``) after its watermark, then refresh the dimensions."""
    lake = Path(lake)
    results = []
    for name in names or list(DATASETS):
        dataset = DATASETS[name]
        results.append(export_dataset(engine, lake, dataset, chunk_rows=chunk_rows, writer_wait_s=writer_wait_s,
                                      progress=lambda n, name=name: progress(name, n)))
    export_dimensions(engine, lake)
    return results


def pending(engine: Engine, name: str) -> int:
    """How many rows of ``name`` are after its watermark (what the next export would write)."""
    dataset = DATASETS[name]
    with engine.connect() as conn:
        after = _after(dataset.select()[0], dataset, watermark(conn, name)).order_by(None).subquery()
        return conn.execute(select(func.count()).select_from(after)).scalar_one()
