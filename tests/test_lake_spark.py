"""The Parquet lake read by a real distributed engine: Apache Spark, in local mode, reads the lake as
it lies on disk and computes the daily marts that DuckDB built from it, to the same figures.

Real readings, imported as an operator would: four days of 2020 from the Han River gauges
(../shared/data): 5–6 August, the flood crest, and 26 and 28 September, when QC flags readings
suspect and bad; and the KMA ASOS sample of tests/data/imports. Needs Java 17+ and pyspark (a dev
dependency; `.ci/run` installs Java from Debian): skipped without them on a laptop, failed with
CI=true. One Spark session for the module, its JVM ended afterwards.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from conftest import SHARED_DATA, fresh_sqlite, service_unavailable
from sqlalchemy import insert, select

from haechi.core.clock import as_utc
from haechi.imports import run_import
from haechi.store import open_db, places
from haechi.store.schema import admin_areas, observations
from haechi.warehouse import lake, marts

HAN = SHARED_DATA / "han-river-gauges" / "data_2020.csv"
KMA = Path(__file__).parent / "data" / "imports" / "kma_asos_hourly.csv"
DAYS = ("2020-08-05", "2020-08-06", "2020-09-26", "2020-09-28")  # KST, as the file's times
# A district at one end of each bridge, for the district marts; Haengju (Goyang side) is left without one.
GAUGES = {"1018662": ("청담대교", "11680"), "1018680": ("잠수교", "11650"), "1018683": ("한강대교", "11590"),
          "1019630": ("행주대교", None)}
DISTRICTS = {"11680": "강남구", "11650": "서초구", "11590": "동작구"}

STATION_DAILY = """
SELECT datastream_id, property, date, count(*) AS n, count(good) AS n_good,
  count(*) - count(good) - count(bad) AS n_suspect, count(bad) AS n_bad,
  avg(good) AS mean, min(good) AS min, max(good) AS max, sum(good) AS total
FROM (SELECT datastream_id, property, date, CASE WHEN result_quality = 'good' THEN result END AS good,
             CASE WHEN result_quality = 'bad' THEN 1 END AS bad FROM observations)
GROUP BY datastream_id, property, date"""

DISTRICT_DAILY = f"""
SELECT d.district_code, s.property, s.date, count(*) AS stations,
  try_divide(sum(s.total), sum(s.n_good)) AS mean, min(s.min) AS min, max(s.max) AS max,
  sum(s.total) / count(*) AS total_per_station
FROM ({STATION_DAILY}) s JOIN dim_datastreams d ON d.datastream_id = s.datastream_id
WHERE d.district_code IS NOT NULL GROUP BY d.district_code, s.property, s.date"""


@pytest.fixture(scope="module")
def built(tmp_path_factory, sqlite_template):
    """The lake and its marts from the real readings, and each reading's stream and time as stored."""
    if not HAN.exists():
        pytest.skip("../shared/data is not here")
    folder = tmp_path_factory.mktemp("spark_lake")
    lines = HAN.read_text(encoding="utf-8").splitlines()
    han = folder / "han_2020.csv"
    han.write_text("\n".join([lines[0], *(line for line in lines[1:] if line.startswith(DAYS))]) + "\n",
                   encoding="utf-8")
    engine = open_db(fresh_sqlite(sqlite_template, folder))
    try:
        with engine.begin() as conn:
            conn.execute(insert(admin_areas), [{"code": "11", "level": "city", "name_ko": "서울특별시"}] + [
                {"code": code, "level": "district", "parent_code": "11", "name_ko": name}
                for code, name in DISTRICTS.items()])
            places.save_places(conn, [{"kind": "river_gauge", "ref": ref, "name_ko": name, "area_code": district}
                                      for ref, (name, district) in GAUGES.items()])
        run_import(engine, "han-river", str(han), actor="test")
        run_import(engine, "kma-asos", str(KMA), actor="test")
        lake.export(engine, folder / "lake")
        with engine.connect() as conn:
            o = observations.c
            stored = {i: (stream, as_utc(t)) for i, stream, t in conn.execute(
                select(o.id, o.datastream_id, o.phenomenon_time))}
    finally:
        engine.dispose()
    marts.refresh(folder / "lake")
    return folder / "lake", stored


@pytest.fixture(scope="module")
def spark(tmp_path_factory):
    """A local Spark session in UTC, on the loopback interface."""
    if shutil.which("java") is None:
        service_unavailable("Java (for Apache Spark)", "no java on PATH; Debian: apt-get install default-jre-headless")
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        service_unavailable("pyspark", exc)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SPARK_LOCAL_IP", "127.0.0.1")
        session = _session(SparkSession, tmp_path_factory.mktemp("spark_warehouse"))
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
    _end_jvm()


def _session(session_class, warehouse: Path):
    """One core, no UI, one shuffle partition: the lake here is small, the JVM's start is the cost."""
    try:
        return (session_class.builder.master("local[1]").appName("haechi-lake")
                .config("spark.sql.session.timeZone", "UTC")
                .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
                .config("spark.sql.shuffle.partitions", "1")
                .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
                .config("spark.driver.extraJavaOptions", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
                .config("spark.sql.warehouse.dir", str(warehouse)).getOrCreate())
    except Exception as exc:  # noqa: BLE001 - a JVM that will not start (too old a Java) means "unavailable"
        service_unavailable("Apache Spark", exc)


def _end_jvm() -> None:
    """spark.stop() leaves pyspark's JVM running until Python exits: the rest of the suite need not carry it."""
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    if gateway is None:
        return
    gateway.shutdown()
    process = getattr(gateway, "proc", None)
    if process is not None:
        process.stdin.close()  # the gateway's JVM exits at the end of its standard input
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    SparkContext._gateway = SparkContext._jvm = None


@pytest.fixture(scope="module")
def views(spark, built):
    folder, _ = built
    spark.read.parquet(str(folder / "observations")).createOrReplaceTempView("observations")
    spark.read.parquet(str(folder / "dimensions" / "datastreams.parquet")).createOrReplaceTempView("dim_datastreams")
    return spark


def _duckdb(folder: Path, sql: str) -> list[dict]:
    with marts.connect(folder) as con:
        result = con.execute(sql)
        names = [d[0] for d in result.description]
        return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


def _by_key(rows: list[dict], key: tuple[str, ...]) -> dict[tuple, dict]:
    keyed = {tuple(r[k] for k in key): r for r in rows}
    assert len(keyed) == len(rows), "a key names more than one row"
    return keyed


def _same_figures(spark_rows: list[dict], duck_rows: list[dict], key: tuple[str, ...]) -> None:
    """Same keys, same integers, floats equal but for the order they were added up in."""
    ours, theirs = _by_key(spark_rows, key), _by_key(duck_rows, key)
    assert set(ours) == set(theirs)
    for k, row in theirs.items():
        assert set(ours[k]) == set(row), k
        for name, value in row.items():
            got = ours[k][name]
            if isinstance(value, float):
                assert isinstance(got, float) and math.isclose(got, value, rel_tol=1e-12, abs_tol=1e-9), (k, name)
            else:
                assert got == value, (k, name, got, value)


def _spark_rows(spark, sql: str) -> list[dict]:
    return [row.asDict() for row in spark.sql(sql).collect()]


def test_spark_sees_the_hive_partitions_and_the_column_types(views, built):
    from pyspark.sql import types as T

    folder, stored = built
    schema = {f.name: f.dataType for f in views.table("observations").schema.fields}
    assert schema == {"id": T.LongType(), "datastream_id": T.LongType(), "phenomenon_time": T.TimestampType(),
                      "result": T.DoubleType(), "result_quality": T.StringType(), "received_at": T.TimestampType(),
                      "date": T.DateType(), "property": T.StringType()}  # instants, not TimestampNTZType
    seen = {(r["date"].isoformat(), r["property"]) for r in _spark_rows(
        views, "SELECT DISTINCT date, property FROM observations")}
    on_disk = {(p.parent.parent.name.removeprefix("date="), p.parent.name.removeprefix("property="))
               for p in (folder / "observations").rglob("*.parquet")}
    assert seen == on_disk and len(on_disk) == 4 * 2 + 4  # 2 gauge properties on 4 days, 4 on the KMA sample's
    assert {p for d, p in seen if d == "2020-08-06"} == {"water_level", "discharge", "air_temperature",
                                                          "rainfall_1h", "wind_speed", "relative_humidity"}
    assert views.table("observations").count() == len(stored)


def test_spark_reads_the_stored_utc_instants_and_the_local_date_partitions(views, built):
    _, stored = built
    rows = _spark_rows(views, "SELECT id, unix_micros(phenomenon_time) AS us, "
                              "date_format(phenomenon_time, \"yyyy-MM-dd'T'HH:mm:ss\") AS shown FROM observations")
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert {r["id"]: r["us"] for r in rows} == {i: (t - epoch) // timedelta(microseconds=1)
                                                for i, (_, t) in stored.items()}
    assert {r["id"]: r["shown"] for r in rows} == {i: t.strftime("%Y-%m-%dT%H:%M:%S") for i, (_, t) in stored.items()}
    crest = _spark_rows(views, "SELECT date_format(phenomenon_time, 'HH:mm') AS utc, date FROM observations o "
                               "JOIN dim_datastreams d USING (datastream_id) WHERE d.place_ref = '1018683' "
                               "AND o.property = 'water_level' ORDER BY o.result DESC LIMIT 1")
    assert crest == [{"utc": "05:20", "date": date(2020, 8, 6)}]  # 14:20 KST, the August 2020 crest
    local = "SELECT count_if(to_date(phenomenon_time) <> date) AS n FROM observations"
    assert _spark_rows(views, local)[0]["n"] > 0  # from 15:00 UTC on, a reading is in the next day's date=…
    views.conf.set("spark.sql.session.timeZone", "Asia/Seoul")
    try:  # date=… is the day in Seoul of every reading in its folder
        assert _spark_rows(views, local)[0]["n"] == 0
    finally:
        views.conf.set("spark.sql.session.timeZone", "UTC")


def test_spark_computes_the_daily_marts_that_duckdb_built(views, built):
    folder, stored = built
    station = _duckdb(folder, "SELECT datastream_id, property, date, n, n_good, n_suspect, n_bad, mean, min, max, "
                              "total FROM mart_station_daily")
    assert {(r["datastream_id"], r["date"].isoformat()) for r in station} == {
        (stream, lake.local_date(t)) for stream, t in stored.values()}  # a row per stream and local day it reported
    assert any(r["n_suspect"] for r in station) and any(r["n_bad"] for r in station)  # good-only figures differ
    _same_figures(_spark_rows(views, STATION_DAILY), station, ("datastream_id", "date"))
    district = _duckdb(folder, "SELECT district_code, property, date, stations, mean, min, max, total_per_station "
                               "FROM mart_district_daily")
    assert {r["district_code"] for r in district} >= {"11680", "11650", "11590"}
    _same_figures(_spark_rows(views, DISTRICT_DAILY), district, ("district_code", "property", "date"))


def test_spark_reads_the_marts_duckdb_wrote(views, built):
    from pyspark.sql import types as T

    folder, _ = built
    for name, key in (("station_daily", ("datastream_id", "date")), ("station_hourly", ("datastream_id", "hour"))):
        duck = _duckdb(folder, f"SELECT * FROM mart_{name}")
        frame = views.read.parquet(str(folder / "marts" / name))
        read = [r.asDict() for r in frame.collect()]
        assert frame.schema["date"].dataType == T.DateType()
        if name == "station_hourly":  # compared as instants: DuckDB gives aware datetimes, pyspark naive local ones
            assert frame.schema["hour"].dataType == T.TimestampType()
            duck = [r | {"hour": int(r["hour"].timestamp())} for r in duck]
            read = [r | {"hour": int(r["hour"].timestamp())} for r in read]
        _same_figures(read, duck, key)
