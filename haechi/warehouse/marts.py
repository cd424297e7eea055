"""Data marts: DuckDB over the Parquet lake, written back as Parquet (a star schema, docs/warehouse.md).

Facts by date (refreshed incrementally: only the local dates whose lake files changed since the
last refresh are recomputed, because every aggregate here stays inside one day):
    station_hourly, station_daily, district_hourly, district_daily, quality_daily
Small facts, rebuilt whole on each refresh:
    warnings_monthly, alerts_monthly, disasters_seasonal, quality_source, responses_monthly
Dimensions: the lake's dimensions/datastreams.parquet and dimensions/areas.parquet.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from .lake import DATASETS, DIMENSIONS, config

STATE_FILE = "_state.json"


# ── DuckDB over the lake ───────────────────────────────────────────────────────────────


def _glob(path: Path) -> str:
    return str(path / "**" / "*.parquet").replace("'", "''")


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.parquet") if not p.name.startswith(".")) if folder.exists() else []


def _hive(partition: str) -> str:
    return f"hive_partitioning=true, hive_types={{'date': DATE, '{partition}': VARCHAR}}"


def connect(lake: Path, *, marts: bool = True, observations: bool = True) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with one view per lake dataset, dimension and (built) mart.

    Missing datasets are empty views of the right columns, so queries never fail on a young lake.
    ``observations=False`` leaves out the biggest view (the refresh lists the files it reads itself).
    """
    lake = Path(lake)
    con = duckdb.connect()
    con.execute(f"SET TimeZone = '{config()['timezone']}'")
    for name, dataset in DATASETS.items():
        folder = lake / name
        if name == "observations" and not observations:
            continue
        if _files(folder):
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{_glob(folder)}', "
                        f"{_hive(dataset.partition)}, union_by_name=true)")
        else:
            _empty_view(con, name, dataset.schema.append(pa.field("date", pa.date32())))
    for name, schema in DIMENSIONS.items():
        path = lake / "dimensions" / f"{name}.parquet"
        if path.exists():
            con.execute(f"CREATE VIEW dim_{name} AS SELECT * FROM read_parquet('{path}')")
        else:
            _empty_view(con, f"dim_{name}", schema)
    if marts:
        for mart in MARTS:
            folder = lake / "marts" / mart.name
            if _files(folder):
                options = ", hive_partitioning=true, hive_types={'date': DATE}" if mart.by_date else ""
                con.execute(f"CREATE VIEW mart_{mart.name} AS SELECT * FROM read_parquet('{_glob(folder)}'{options})")
    return con


def _empty_view(con: duckdb.DuckDBPyConnection, name: str, schema: pa.Schema) -> None:
    con.from_arrow(schema.empty_table()).create_view(name)


# ── The marts ──────────────────────────────────────────────────────────────────────────

#: The one big pass over raw readings: per datastream and hour (integer hour keys and few
#: aggregates, because this is the step whose groups are as many as the readings at hourly
#: resolution). Daily and district marts add these up exactly. Only three QC flags exist (a CHECK
#: constraint), so suspect = all − good − bad.
HOURLY_SQL = """
SELECT datastream_id, property, h,
  count(*) AS n, count(good_result) AS n_good, count(bad) AS n_bad,
  min(good_result) AS min, max(good_result) AS max, sum(good_result) AS total, date
FROM (SELECT datastream_id, property, date, epoch_us(phenomenon_time) // 3600000000 AS h,
             CASE WHEN result_quality = 'good' THEN result END AS good_result,
             CASE WHEN result_quality = 'bad' THEN 1 END AS bad FROM src)
GROUP BY datastream_id, h, property, date"""
# Hours are UTC hours; they are the local hours too wherever the offset is whole hours, as in
# Seoul, and an hour then never spans two local dates. A stream's hour thus lies in one
# date=…/property=… partition of the lake, so date and property are grouping keys rather than
# any_value() aggregates: the same rows, and in this pass every aggregate state costs (counts
# rather than a sum of flags, for the same reason).

DAILY_SQL = """
SELECT datastream_id, property, sum(n)::BIGINT AS n, sum(n_good)::BIGINT AS n_good,
  sum(n_bad)::BIGINT AS n_bad, min(min) AS min, max(max) AS max, sum(total) AS total, date
FROM hourly GROUP BY datastream_id, property, date"""

_MEASURES = """n, n_good, n - n_good - n_bad AS n_suspect, n_bad, total / nullif(n_good, 0) AS mean, min, max, total"""
# One row per datastream and hour (or day) in the source: count(*) counts the district's stations.
_DISTRICT_STATS = """count(*) AS stations, sum(total) / nullif(sum(n_good), 0) AS mean, min(min) AS min,
    max(max) AS max, sum(total) / count(*) AS total_per_station"""


def _quality_sql() -> str:
    q = config()["quality"]
    wc, wv, wt = q["weight_completeness"], q["weight_validity"], q["weight_timeliness"]
    return f"""
WITH per_day AS (
  SELECT o.datastream_id, any_value(o.property) AS property, any_value(d.source) AS source, count(*) AS n,
    86400.0 / any_value(d.interval_s) AS expected,
    avg((result_quality = 'good')::DOUBLE) AS share_good,
    avg((result_quality = 'suspect')::DOUBLE) AS share_suspect,
    avg((result_quality = 'bad')::DOUBLE) AS share_bad,
    median(latency) AS latency_median_s, max(latency) AS latency_max_s,
    avg((latency <= coalesce(d.interval_s, 3600))::DOUBLE) AS share_timely, o.date
  FROM (SELECT datastream_id, property, date, result_quality,
               epoch(received_at) - epoch(phenomenon_time) AS latency FROM src) o
  LEFT JOIN dim_datastreams d USING (datastream_id)
  GROUP BY o.datastream_id, o.date
)
SELECT datastream_id, property, source, n, least(1.0, n / expected) AS completeness, share_good,
  share_suspect, share_bad, latency_median_s, latency_max_s, share_timely,
  100 * ({wc} * coalesce(least(1.0, n / expected), 1.0) + {wv} * share_good + {wt} * share_timely)
      / ({wc} + {wv} + {wt}) AS score, date
FROM per_day"""


@dataclass(frozen=True)
class Mart:
    name: str
    sql: str  # reads ``src`` (the changed lake days) for by-date marts, the whole lake otherwise
    by_date: bool = True
    description: str = ""


def _month(column: str) -> str:
    return f"strftime(timezone(current_setting('TimeZone'), {column}), '%Y-%m')"


def _season_case(month_expr: str) -> str:
    seasons = config()["seasons"]
    whens = " ".join(f"WHEN {month_expr} IN ({', '.join(map(str, months))}) THEN '{name}'"
                     for name, months in seasons.items())
    return f"CASE {whens} END"


def _marts() -> tuple[Mart, ...]:
    local_month = "month(timezone(current_setting('TimeZone'), started_at))"
    # A winter's December belongs to the next year's winter (Dec 2020 – Feb 2021 is winter 2021).
    season_year = (f"year(timezone(current_setting('TimeZone'), started_at)) + "
                   f"CASE WHEN {local_month} = 12 THEN 1 ELSE 0 END")
    return (
        Mart("station_hourly", f"""SELECT datastream_id, property, to_timestamp(h * 3600) AS hour, {_MEASURES},
    date FROM hourly""", description="Per datastream and hour: readings by QC flag; mean, min, max, sum of good ones"),
        Mart("station_daily", f"""SELECT datastream_id, property, {_MEASURES}, date FROM daily""",
             description="Per datastream and local day"),
        Mart("district_hourly", f"""SELECT d.district_code, o.property, to_timestamp(o.h * 3600) AS hour,
    {_DISTRICT_STATS}, o.date FROM hourly o JOIN dim_datastreams d USING (datastream_id)
    WHERE d.district_code IS NOT NULL GROUP BY d.district_code, o.property, o.h, o.date""",
             description="Per district, property and hour over the district's stations (good readings)"),
        Mart("district_daily", f"""SELECT d.district_code, o.property, {_DISTRICT_STATS}, o.date
    FROM daily o JOIN dim_datastreams d USING (datastream_id)
    WHERE d.district_code IS NOT NULL GROUP BY d.district_code, o.property, o.date""",
             description="Per district, property and local day"),
        Mart("quality_daily", _quality_sql(),
             description="Per datastream and day: completeness, QC shares, latency, timeliness, score"),
        Mart("quality_source", """SELECT source, property, count(DISTINCT datastream_id) AS sensors,
    count(*) AS sensor_days, avg(completeness) AS completeness, avg(share_good) AS share_good,
    avg(share_bad) AS share_bad, median(latency_median_s) AS latency_median_s, avg(share_timely) AS share_timely,
    avg(score) AS score FROM mart_quality_daily GROUP BY ALL""", by_date=False,
             description="Per source (sensor model or feed) and property: mean quality over all days"),
        Mart("warnings_monthly", f"""WITH latest AS (
    SELECT * FROM warnings QUALIFY row_number() OVER (PARTITION BY id ORDER BY updated_at DESC) = 1)
  SELECT w.hazard, coalesce(CASE WHEN length(w.area_code) >= 5 THEN left(w.area_code, 5) END,
                            d.district_code) AS district_code,
    {_month('w.issued_at')} AS month, w.level, count(*) AS warnings,
    avg(epoch(coalesce(w.cancelled_at, w.updated_at)) - epoch(w.issued_at)) / 3600 AS mean_hours_in_force,
    max(w.value) AS max_value
  FROM latest w LEFT JOIN dim_datastreams d USING (datastream_id)
  WHERE NOT w.exercise GROUP BY ALL""", by_date=False,
             description="Warnings (drills excluded) by hazard, district, local month and level"),
        Mart("alerts_monthly", f"""WITH per_district AS (
    SELECT DISTINCT id, hazard, msg_type, sent, left(unnest(area_codes), 5) AS district_code
    FROM alerts WHERE status = 'Actual')
  SELECT hazard, district_code, {_month('sent')} AS month, msg_type, count(*) AS alerts
  FROM per_district WHERE length(district_code) = 5 AND district_code NOT LIKE '%000'
  GROUP BY ALL""", by_date=False,
             description="Actual CAP alerts by hazard, district covered, local month and message type"),
        Mart("disasters_seasonal", f"""SELECT kind, category,
    CASE WHEN length(area_code) >= 5 THEN left(area_code, 5) ELSE area_code END AS district_code,
    {season_year} AS season_year, {_season_case(local_month)} AS season,
    count(*) AS events, sum(deaths)::BIGINT AS deaths, sum(injuries)::BIGINT AS injuries,
    sum(missing)::BIGINT AS missing, sum(evacuated)::BIGINT AS evacuated, sum(damage_krw)::BIGINT AS damage_krw
  FROM (SELECT * FROM disasters QUALIFY row_number() OVER (PARTITION BY id) = 1) GROUP BY ALL""",
             by_date=False, description="Disaster history by kind, district and KMA season"),
        Mart("responses_monthly", f"""SELECT kind,
    CASE WHEN length(area_code) >= 5 THEN left(area_code, 5) ELSE area_code END AS district_code,
    {_month('dispatched_at')} AS month, count(*) AS dispatches, median(response_s) AS median_response_s,
    quantile_cont(response_s, 0.9) AS p90_response_s, avg(golden_time_s) AS golden_time_s,
    avg(CASE WHEN met_golden_time THEN 1.0 ELSE 0.0 END) FILTER (WHERE met_golden_time IS NOT NULL)
      AS share_met_golden_time
  FROM (SELECT * FROM responses QUALIFY row_number() OVER (PARTITION BY id ORDER BY arrived_at DESC) = 1)
  GROUP BY ALL""", by_date=False,
             description="119 response times against the golden time by incident kind, district and month"),
    )


MARTS = _marts()
BY_NAME = {m.name: m for m in MARTS}


# ── Refresh ────────────────────────────────────────────────────────────────────────────


@dataclass
class RefreshResult:
    dates: list[str] = field(default_factory=list)  # local dates recomputed
    full: bool = False
    rows: dict[str, int] = field(default_factory=dict)


def _fingerprint(lake: Path) -> dict[str, list[int]]:
    folder = lake / "observations"
    return {str(p.relative_to(folder)): [p.stat().st_size, p.stat().st_mtime_ns] for p in _files(folder)}


def _dimension_digest(lake: Path) -> str:
    path = lake / "dimensions" / "datastreams.parquet"
    if not path.exists():
        return ""
    import pyarrow.parquet as pq

    rows = pq.read_table(path).to_pylist()
    return hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()


def _date_of(relative: str) -> str:
    return relative.split("/", 1)[0].removeprefix("date=")


def changed_dates(old: dict[str, list[int]], new: dict[str, list[int]]) -> set[str]:
    """Local dates with a lake file added, changed or removed between two fingerprints."""
    keys = set(old) | set(new)
    return {_date_of(k) for k in keys if old.get(k) != new.get(k)}


def refresh(lake: Path, *, full: bool = False) -> RefreshResult:
    """Bring the marts up to date with the lake; only changed days unless ``full``."""
    lake = Path(lake)
    root = lake / "marts"
    state_path = root / STATE_FILE
    state = json.loads(state_path.read_text()) if state_path.exists() and not full else {}
    fingerprint, digest = _fingerprint(lake), _dimension_digest(lake)
    all_dates = {_date_of(k) for k in fingerprint}
    if full or state.get("dimensions") != digest:  # districts of stations may have changed
        dirty, result = all_dates | changed_dates(state.get("files", {}), fingerprint), RefreshResult(full=True)
    else:
        dirty, result = changed_dates(state.get("files", {}), fingerprint), RefreshResult()
    result.dates = sorted(dirty)
    root.mkdir(parents=True, exist_ok=True)
    con = connect(lake, marts=False, observations=False)
    try:
        rows = _refresh_by_date(con, _files_by_date(lake, fingerprint, dirty), root, whole=result.full)
        _register_quality(con, root)
        for mart in (m for m in MARTS if not m.by_date):
            rows[mart.name] = _write_whole(con, mart, root)
    finally:
        con.close()
    result.rows = {m.name: rows[m.name] for m in MARTS}
    _write_text_atomically(state_path, json.dumps({"files": fingerprint, "dimensions": digest}))
    return result


def _files_by_date(lake: Path, fingerprint: dict[str, list[int]], dates: set[str]) -> dict[str, list[Path]]:
    """The lake's observation files of each of ``dates`` (none for a day gone from the lake)."""
    files: dict[str, list[Path]] = {day: [] for day in dates}
    for relative in sorted(fingerprint):
        if _date_of(relative) in files:
            files[_date_of(relative)].append(lake / "observations" / relative)
    return files


#: Days aggregated and written together, at most: the hourly tables of a few batches, not of the
#: whole lake, are in memory at once (peak memory of the benchmark's full rebuild,
#: benchmarks/marts.py: 0.6 GB rather than 2.2 GB for the year in one pass).
BATCH_DAYS = 31


def _batches(files: dict[str, list[Path]], cores: int) -> list[list[Path]]:
    """The files of consecutive days, batch by batch: a batch per core at least, days allowing."""
    days = sorted(files)
    size = max(1, min(BATCH_DAYS, math.ceil(len(days) / cores)))
    return [[f for day in days[i:i + size] for f in files[day]] for i in range(0, len(days), size)]


def _refresh_by_date(con: duckdb.DuckDBPyConnection, files: dict[str, list[Path]], root: Path, *,
                     whole: bool) -> dict[str, int]:
    """Recompute the by-date marts for the dates of ``files``; rows written per mart.

    Batch by batch of days (every by-date aggregate stays inside one day): one pass over a batch's
    raw readings builds ``hourly`` (and ``daily`` from it), which the station and district marts
    read; quality_daily reads the raw readings. As many batches run at once as there are cores,
    each on its own cursor and DuckDB thread: whole batches side by side keep the cores busy
    without the hand-offs (and idle spinning) of splitting each query across threads; a single
    batch (one day) uses DuckDB's threads. Each mart's batches go to its staging folder, swapped
    in once all are written.
    """
    cores = con.execute("SELECT current_setting('threads')").fetchall()[0][0]  # DuckDB's count of them
    con.execute("SET preserve_insertion_order = false")  # aggregates have no order to keep
    batches = _batches(files, cores)
    if len(batches) > 1:
        con.execute("SET threads = 1")  # one per query: the parallelism is across batches
    staging = {m.name: root / f".{m.name}.{uuid.uuid4().hex}" for m in MARTS if m.by_date}
    _source(con, [])  # even with no day to recompute: an empty quality_daily is read off it
    try:
        for folder in staging.values():
            folder.mkdir()  # before the batches: they write into it side by side
        jobs = [(con.cursor(), batch) for batch in batches]  # made here, each then used by one worker
        with ThreadPoolExecutor(max_workers=cores) as pool:
            written = list(pool.map(lambda job: _write_batch(*job, staging), jobs))
        for name, folder in staging.items():
            _swap_in(folder, root / name, sorted(files), whole=whole)
    finally:
        for folder in staging.values():
            shutil.rmtree(folder, ignore_errors=True)
    return {name: sum(counts.get(name, 0) for counts in written) for name in staging}


def _write_batch(cursor: duckdb.DuckDBPyConnection, files: list[Path], staging: dict[str, Path]) -> dict[str, int]:
    """One batch of days into each by-date mart's staging folder; its own cursor, so its own
    temporary ``src``, ``hourly`` and ``daily``."""
    with cursor:
        if not files:  # only days gone from the lake: nothing to write, their folders just go
            return {}
        cursor.execute(f"SET TimeZone = '{config()['timezone']}'")  # settings are per connection
        _source(cursor, files)
        cursor.execute(f"CREATE TEMP TABLE hourly AS {HOURLY_SQL}")
        cursor.execute(f"CREATE TEMP TABLE daily AS {DAILY_SQL}")
        return {name: _copy_by_date(cursor, BY_NAME[name], folder) for name, folder in staging.items()}


def _source(con: duckdb.DuckDBPyConnection, files: list[Path]) -> None:
    """``src``: the given lake files of observations (a temporary view: each cursor its own);
    an empty view of the right columns without files."""
    if files:
        listed = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
        con.execute(f"CREATE TEMP VIEW src AS SELECT * FROM read_parquet([{listed}], {_hive('property')})")
    else:
        _empty_view(con, "src", DATASETS["observations"].schema.append(pa.field("date", pa.date32())))


def _copy_by_date(con: duckdb.DuckDBPyConnection, mart: Mart, staging: Path) -> int:
    """Add ``mart``'s rows of the current batch to its staging folder, one date=… folder a day."""
    return con.execute(f"COPY ({mart.sql}) TO '{staging}' (FORMAT parquet, PARTITION_BY (date), "
                       "COMPRESSION zstd, OVERWRITE_OR_IGNORE)").fetchall()[0][0]


def _swap_in(staging: Path, target: Path, dates: list[str], *, whole: bool) -> None:
    """Put the staged days in place: the whole mart folder on a full rebuild (one rename, and days
    no longer in the lake go too), else each recomputed date's folder."""
    if whole:
        if not any(staging.iterdir()):
            staging.rmdir()  # no rows at all: no folder, as for a mart never written
        _swap(staging, target)
        return
    for day in dates:
        _swap(staging / f"date={day}", target / f"date={day}")


def _swap(new: Path, old: Path) -> None:
    """Put ``new`` in the place of ``old`` (either may be missing); readers never see half a file."""
    old.parent.mkdir(parents=True, exist_ok=True)
    retired = old.with_name(f".{old.name}.{uuid.uuid4().hex}.old")
    if old.exists():
        os.replace(old, retired)
    if new.exists():
        os.replace(new, old)
    shutil.rmtree(retired, ignore_errors=True)


def _register_quality(con: duckdb.DuckDBPyConnection, root: Path) -> None:
    files = _files(root / "quality_daily")
    if files:
        con.execute(f"CREATE VIEW mart_quality_daily AS SELECT * FROM read_parquet('{_glob(root / 'quality_daily')}', "
                    "hive_partitioning=true, hive_types={'date': DATE})")
    else:
        con.execute("CREATE VIEW mart_quality_daily AS SELECT * FROM (" + BY_NAME["quality_daily"].sql +
                    ") WHERE false")


def _write_whole(con: duckdb.DuckDBPyConnection, mart: Mart, root: Path) -> int:
    table = con.sql(mart.sql).to_arrow_table()
    from .lake import write_atomically

    write_atomically(table, root / mart.name / "data.parquet")
    return table.num_rows


def _write_text_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
