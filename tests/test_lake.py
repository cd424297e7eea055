"""The Parquet lake: incremental, idempotent and crash-safe exports on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import duckdb
import pytest
from sqlalchemy import insert
from typer.testing import CliRunner

from haechi.cli import app
from haechi.store import sensing
from haechi.store import warnings as warning_store
from haechi.store.schema import admin_areas
from haechi.warehouse import lake
from haechi.warehouse.marts import connect, refresh

T0 = datetime(2020, 8, 5, 14, 0, tzinfo=UTC)  # 23:00 KST on 5 August: local days differ from UTC ones


def make_stream(conn, name: str = "Hangang Bridge water level", prop: str = "water_level",
                district: str = "11590") -> int:
    """A datastream with its thing, sensor and property, in ``district`` (created if new)."""
    if not conn.execute(admin_areas.select().where(admin_areas.c.code == "11")).first():
        conn.execute(insert(admin_areas), [{"code": "11", "level": "city", "name_ko": "서울특별시"}])
    if not conn.execute(admin_areas.select().where(admin_areas.c.code == district)).first():
        conn.execute(insert(admin_areas), [{"code": district, "level": "district", "parent_code": "11",
                                            "name_ko": f"구 {district}"}])
    ids = sensing.observed_property_ids(conn)
    if prop not in ids:
        sensing.save_observed_properties(conn, [{"code": prop, "name": prop, "definition": "http://x/" + prop}])
        ids = sensing.observed_property_ids(conn)
    thing = sensing.create_thing(conn, {"name": name})
    sensor = sensing.create_sensor(conn, {"name": "HRFCO gauge"})
    return sensing.create_datastream(conn, {
        "name": name, "thing_id": thing, "sensor_id": sensor, "observed_property_id": ids[prop],
        "unit_name": "metre", "unit_symbol": "m", "unit_definition": "ucum:m", "area_code": district})


def add_readings(conn, stream: int, start: datetime, values, step=timedelta(minutes=10), quality=None):
    rows = [{"datastream_id": stream, "phenomenon_time": start + i * step, "result": v,
             "result_quality": (quality or {}).get(i, "good"), "received_at": start + i * step + timedelta(seconds=30)}
            for i, v in enumerate(values)]
    return sensing.add_observations(conn, rows)


def lake_ids(folder, dataset: str = "observations") -> list[int]:
    return [r[0] for r in duckdb.sql(
        f"SELECT id FROM read_parquet('{folder}/{dataset}/**/*.parquet', hive_partitioning=true) ORDER BY id"
    ).fetchall()]


def test_export_is_incremental_and_idempotent(engine, tmp_path):
    with engine.begin() as conn:
        stream = make_stream(conn)
        add_readings(conn, stream, T0, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    first = lake.export(engine, tmp_path)
    assert first[0].rows == 7
    assert len(lake_ids(tmp_path)) == 7

    files_before = sorted(p.name for p in tmp_path.rglob("*.parquet"))
    again = lake.export(engine, tmp_path)
    assert {r.rows for r in again} == {0}  # nothing new: nothing written
    assert sorted(p.name for p in tmp_path.rglob("*.parquet")) == files_before

    with engine.begin() as conn:
        add_readings(conn, stream, T0 + timedelta(hours=2), [8.0, 9.0])
    assert lake.pending(engine, "observations") == 2
    third = lake.export(engine, tmp_path)
    assert third[0].rows == 2
    ids = lake_ids(tmp_path)
    assert len(ids) == len(set(ids)) == 9
    # Partitioned by local (KST) date and property: 14:00 UTC on the 5th is 23:00 KST on the 5th.
    days = {p.parent.parent.name for p in (tmp_path / "observations").rglob("*.parquet")}
    assert days == {"date=2020-08-05", "date=2020-08-06"}
    assert all(p.parent.name == "property=water_level" for p in (tmp_path / "observations").rglob("*.parquet"))


def test_a_crash_between_files_and_watermark_never_duplicates(engine, tmp_path):
    with engine.begin() as conn:
        stream = make_stream(conn)
        add_readings(conn, stream, T0, [float(i) for i in range(12)])

    def crash():
        raise RuntimeError("power cut")

    with pytest.raises(RuntimeError):
        lake.export_dataset(engine, tmp_path, lake.DATASETS["observations"], chunk_rows=5, after_files=crash)
    assert len(lake_ids(tmp_path)) == 5  # the first chunk's files are there, the watermark is not advanced
    assert lake.pending(engine, "observations") == 12
    with engine.begin() as conn:  # more rows arrive before the re-run
        add_readings(conn, stream, T0 + timedelta(hours=3), [100.0])
    result = lake.export_dataset(engine, tmp_path, lake.DATASETS["observations"], chunk_rows=5)
    assert result.rows == 13
    ids = lake_ids(tmp_path)
    assert len(ids) == len(set(ids)) == 13
    assert not list(tmp_path.rglob("*.tmp"))  # no half-written files left behind


ON_POSTGRES = [pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.mark.parametrize("db_url", ON_POSTGRES, indirect=True)
def test_a_lower_id_committed_late_still_reaches_the_lake_once(engine, tmp_path):
    """A long import holds a low id while a later writer commits a higher one (PostgreSQL)."""
    with engine.begin() as conn:
        stream = make_stream(conn)
    importer = engine.connect()
    try:
        add_readings(importer, stream, T0, [1.0])  # draws the lower id, stays uncommitted
        with engine.begin() as conn:
            add_readings(conn, stream, T0 + timedelta(hours=1), [2.0])  # a higher id, committed
        held = lake.export(engine, tmp_path, ["observations"], writer_wait_s=0.2)[0]
        assert held.postponed and held.rows == 0  # exporting id 2 now would pass over id 1 for good
        importer.commit()
    finally:
        importer.close()
    done = lake.export(engine, tmp_path, ["observations"], writer_wait_s=0.2)[0]
    assert not done.postponed and done.rows == 2
    assert lake.export(engine, tmp_path, ["observations"])[0].rows == 0
    values = duckdb.sql(f"SELECT result FROM read_parquet('{tmp_path}/observations/**/*.parquet') "
                        "ORDER BY id").fetchall()
    assert values == [(1.0,), (2.0,)]  # the late row is there, exactly once


@pytest.mark.parametrize("db_url", ON_POSTGRES, indirect=True)
def test_the_export_command_says_which_datasets_wait_for_open_writers(engine, db_url, tmp_path, monkeypatch):
    with engine.begin() as conn:
        stream = make_stream(conn)
    settings = lake.config()
    monkeypatch.setattr(lake, "config", lambda: {**settings, "lake": {"writer_wait_s": 0.2}})
    monkeypatch.setenv("COLUMNS", "200")
    importer = engine.connect()
    try:
        add_readings(importer, stream, T0, [1.0])  # an import still writing
        result = CliRunner().invoke(app, ["lake", "export", "--database-url", db_url, "--lake", str(tmp_path)])
    finally:
        importer.rollback()
        importer.close()
    assert result.exit_code == 0, result.output
    line = next(row for row in result.output.splitlines() if "observations" in row and "│" in row)
    assert "postponed" in line


@pytest.mark.parametrize("db_url", ON_POSTGRES, indirect=True)
def test_an_export_waits_for_a_writer_about_to_commit(engine, tmp_path):
    with engine.begin() as conn:
        stream = make_stream(conn)
    importer = engine.connect()
    add_readings(importer, stream, T0, [1.0])
    with engine.begin() as conn:
        add_readings(conn, stream, T0 + timedelta(hours=1), [2.0])

    def commit_soon():
        time.sleep(0.3)
        importer.commit()
        importer.close()

    committer = threading.Thread(target=commit_soon)
    committer.start()
    try:
        result = lake.export(engine, tmp_path, ["observations"], writer_wait_s=30)[0]
    finally:
        committer.join()
    assert not result.postponed and result.rows == 2
    assert len(lake_ids(tmp_path)) == 2


def test_changed_warnings_are_exported_again_and_counted_once(engine, tmp_path):
    with engine.begin() as conn:
        stream = make_stream(conn)
        warning = warning_store.open_warning(conn, {
            "hazard": "river_flood", "area_key": "gauge:1018683", "area_code": "11", "level": "advisory",
            "crisis_level": "caution", "value": 8.6, "unit": "m", "criterion": {"property": "water_level"},
            "datastream_id": stream, "issued_at": T0, "updated_at": T0})
    lake.export(engine, tmp_path)
    with engine.begin() as conn:
        warning_store.change_warning(conn, warning, {"status": "cancelled", "cancelled_at": T0 + timedelta(hours=6),
                                                     "updated_at": T0 + timedelta(hours=6)})
    assert lake.export(engine, tmp_path)[1].rows == 1
    assert lake.export(engine, tmp_path)[1].rows == 0
    assert lake_ids(tmp_path, "warnings") == [warning, warning]  # two versions of the same warning
    refresh(tmp_path)
    rows = connect(tmp_path).sql("SELECT district_code, month, warnings, mean_hours_in_force "
                                 "FROM mart_warnings_monthly").fetchall()
    # area_code 11 is the city: the district comes from the warning's gauge stream (11590).
    assert rows == [("11590", "2020-08", 1, 6.0)]


def test_cli_exports_and_queries_the_lake(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    url = f"sqlite:///{tmp_path / 'h.db'}"
    from haechi.store import open_db

    engine = open_db(url)
    with engine.begin() as conn:
        stream = make_stream(conn)
        add_readings(conn, stream, T0, [1.5, 2.5])
    engine.dispose()
    folder = tmp_path / "lake"
    result = CliRunner().invoke(app, ["lake", "export", "--database-url", url, "--lake", str(folder)])
    assert result.exit_code == 0, result.output
    assert "observations" in result.output
    result = CliRunner().invoke(app, ["lake", "query", "SELECT sum(result) AS total FROM observations",
                                      "--lake", str(folder)])
    assert result.exit_code == 0, result.output
    assert "4.0" in result.output
    result = CliRunner().invoke(app, ["lake", "query", "SELECT nonsense FROM nowhere", "--lake", str(folder)])
    assert result.exit_code == 2 and "nowhere" in result.output
    status = CliRunner().invoke(app, ["lake", "status", "--database-url", url])
    assert status.exit_code == 0 and "observations" in status.output
