"""Data marts against hand-computed aggregates, incremental refresh, and pattern mining (also on the
real Han River gauges)."""

from __future__ import annotations

import csv
import shutil
from datetime import UTC, date, datetime, timedelta

import pytest
from conftest import SHARED_DATA
from sqlalchemy import insert
from test_lake import add_readings, make_stream
from typer.testing import CliRunner

from haechi.cli import app
from haechi.core.clock import KST
from haechi.store.schema import alerts, disasters
from haechi.warehouse import lake, marts, patterns

H0 = datetime(2020, 8, 6, 0, tzinfo=UTC)  # 09:00 KST on 6 August


def _rows(folder, sql):
    con = marts.connect(folder)
    result = con.execute(sql)
    names = [d[0] for d in result.description]
    return [dict(zip(names, r, strict=True)) for r in result.fetchall()]


@pytest.fixture
def seeded(sqlite_engine, tmp_path):
    with sqlite_engine.begin() as conn:
        a = make_stream(conn, "A level")
        b = make_stream(conn, "B level")
        c = make_stream(conn, "C level", district="11680")
        add_readings(conn, a, H0, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], quality={5: "bad"})
        add_readings(conn, b, H0, [10.0, 20.0], step=timedelta(minutes=30))
        add_readings(conn, c, H0 + timedelta(hours=1), [7.0])
        conn.execute(insert(alerts), [{
            "identifier": "x1", "sender": "s", "sent": H0, "status": "Actual", "msg_type": "Alert",
            "hazard": "river_flood", "severity": "Moderate", "urgency": "Expected", "certainty": "Observed",
            "area_codes": ["1159000000", "1159010100", "1117000000", "1100000000"], "cap_xml": "<alert/>",
            "cap_json": {}}])
        conn.execute(insert(disasters), [
            {"category": "natural", "kind": "flood", "title": "summer", "started_at": datetime(2020, 8, 1, tzinfo=UTC),
             "area_code": "11590", "deaths": 1, "injuries": 2},
            {"category": "natural", "kind": "flood", "title": "late", "started_at": datetime(2020, 8, 2, tzinfo=UTC),
             "area_code": "11590", "deaths": 0, "injuries": 3},
            # 15 December 2020 KST: meteorological winter 2020–21, counted in season_year 2021.
            {"category": "social", "kind": "fire", "title": "winter",
             "started_at": datetime(2020, 12, 15, tzinfo=KST), "area_code": "11590", "deaths": 0, "injuries": 0}])
    folder = tmp_path / "lake"
    lake.export(sqlite_engine, folder)
    return sqlite_engine, folder, (a, b, c)


def test_hourly_and_daily_marts_match_hand_computed_aggregates(seeded):
    _, folder, (a, _b, _c) = seeded
    result = marts.refresh(folder)
    assert result.full and result.dates == ["2020-08-06"]
    hour_a = _rows(folder, f"SELECT * FROM mart_station_hourly WHERE datastream_id = {a}")
    assert len(hour_a) == 1
    row = hour_a[0]
    assert (row["n"], row["n_good"], row["n_bad"], row["n_suspect"]) == (6, 5, 1, 0)
    assert (row["mean"], row["min"], row["max"], row["total"]) == (3.0, 1.0, 5.0, 15.0)  # the bad 6.0 left out
    assert row["hour"] == H0
    district = _rows(folder, "SELECT * FROM mart_district_hourly WHERE district_code = '11590'")
    assert len(district) == 1
    assert district[0]["stations"] == 2
    assert district[0]["mean"] == pytest.approx(45 / 7)  # good readings 1..5, 10, 20
    assert (district[0]["min"], district[0]["max"], district[0]["total_per_station"]) == (1.0, 20.0, 22.5)
    daily = _rows(folder, "SELECT district_code, count(*) AS n FROM mart_district_daily GROUP BY ALL ORDER BY 1")
    assert daily == [{"district_code": "11590", "n": 1}, {"district_code": "11680", "n": 1}]


def test_quality_scores_follow_the_expected_interval(seeded):
    _, folder, (a, _, _) = seeded
    marts.refresh(folder)
    q = _rows(folder, f"SELECT * FROM mart_quality_daily WHERE datastream_id = {a}")[0]
    # water_level reports every 600 s (properties.csv): 144 a day expected, 6 came.
    assert q["completeness"] == pytest.approx(6 / 144)
    assert q["share_good"] == pytest.approx(5 / 6) and q["share_bad"] == pytest.approx(1 / 6)
    assert q["latency_median_s"] == pytest.approx(30.0) and q["share_timely"] == 1.0
    assert q["score"] == pytest.approx(100 * (6 / 144 + 5 / 6 + 1.0) / 3)
    source = _rows(folder, "SELECT * FROM mart_quality_source")
    assert [(s["source"], s["sensors"]) for s in source] == [("HRFCO gauge", 3)]


def test_event_marts_by_hazard_district_month_and_season(seeded):
    _, folder, _ = seeded
    marts.refresh(folder)
    alerted = _rows(folder, "SELECT district_code, month, alerts FROM mart_alerts_monthly ORDER BY 1")
    # One alert, counted once per district it covers; the city-wide code is not a district.
    assert alerted == [{"district_code": "11170", "month": "2020-08", "alerts": 1},
                       {"district_code": "11590", "month": "2020-08", "alerts": 1}]
    seasons = _rows(folder, "SELECT kind, district_code, season_year, season, events, deaths, injuries "
                            "FROM mart_disasters_seasonal ORDER BY season_year")
    assert seasons == [
        {"kind": "flood", "district_code": "11590", "season_year": 2020, "season": "summer", "events": 2,
         "deaths": 1, "injuries": 5},
        {"kind": "fire", "district_code": "11590", "season_year": 2021, "season": "winter", "events": 1,
         "deaths": 0, "injuries": 0}]


def test_refresh_recomputes_only_the_days_that_changed(seeded):
    engine, folder, (a, _, _) = seeded
    marts.refresh(folder)
    old_day = next((folder / "marts" / "station_daily" / "date=2020-08-06").glob("*.parquet"))
    stamp = old_day.stat().st_mtime_ns
    assert marts.refresh(folder).dates == []  # nothing changed: nothing recomputed
    with engine.begin() as conn:
        add_readings(conn, a, H0 + timedelta(days=1), [9.0, 11.0])
    lake.export(engine, folder)
    result = marts.refresh(folder)
    assert not result.full and result.dates == ["2020-08-07"]
    assert next((folder / "marts" / "station_daily" / "date=2020-08-06").glob("*.parquet")).stat().st_mtime_ns == stamp
    day2 = _rows(folder, f"SELECT mean FROM mart_station_daily WHERE datastream_id = {a} AND date = '2020-08-07'")
    assert day2 == [{"mean": 10.0}]
    full = marts.refresh(folder, full=True)
    assert full.full and full.dates == ["2020-08-06", "2020-08-07"]
    assert _rows(folder, "SELECT count(*) AS n FROM mart_station_daily") == [{"n": 4}]  # A, B, C; then A


def _all_marts(folder) -> dict[str, list[tuple]]:
    """Every mart's rows, floats to 12 digits: sums and means may add up in another order."""
    con = marts.connect(folder)
    return {m.name: [tuple(float(f"{v:.12g}") if isinstance(v, float) else v for v in row)
                     for row in con.execute(f"SELECT * FROM mart_{m.name} ORDER BY ALL").fetchall()]
            for m in marts.MARTS}


def test_incremental_refreshes_build_the_same_marts_as_a_full_rebuild(seeded, tmp_path, monkeypatch):
    engine, folder, (a, _, c) = seeded
    marts.refresh(folder)
    for day in (1, 2):  # a day arrives, is exported, and only it is refreshed
        with engine.begin() as conn:
            add_readings(conn, a, H0 + timedelta(days=day), [1.0 + day, 2.5, 30.0], quality={2: "bad"})
            add_readings(conn, c, H0 + timedelta(days=day, hours=1), [5.0 * day, 6.0],
                         step=timedelta(minutes=30), quality={1: "suspect"})
        lake.export(engine, folder)
        step = marts.refresh(folder)
        assert not step.full and len(step.dates) == 1
    rebuilt = tmp_path / "rebuilt"
    shutil.copytree(folder, rebuilt, ignore=shutil.ignore_patterns("marts"))
    monkeypatch.setattr(marts, "BATCH_DAYS", 1)  # the rebuild's days in batches written side by side
    assert marts.refresh(rebuilt, full=True).dates == ["2020-08-06", "2020-08-07", "2020-08-08"]
    incremental, full = _all_marts(folder), _all_marts(rebuilt)
    assert len(full["station_daily"]) == 7 and len(full["station_hourly"]) == 7  # not vacuously equal
    assert full == incremental


def _withdraw_a_day(seeded):
    """The lake and marts with a reading on 2020-08-07, then that day withdrawn from the lake."""
    engine, folder, (a, _, _) = seeded
    with engine.begin() as conn:
        add_readings(conn, a, H0 + timedelta(days=1), [9.0])
    lake.export(engine, folder)
    marts.refresh(folder)
    shutil.rmtree(folder / "observations" / "date=2020-08-07")
    return folder


def test_a_full_rebuild_drops_days_gone_from_the_lake(seeded):
    folder = _withdraw_a_day(seeded)
    assert marts.refresh(folder, full=True).dates == ["2020-08-06"]
    for name in ("station_hourly", "station_daily", "district_daily", "quality_daily"):
        assert _rows(folder, f"SELECT DISTINCT date FROM mart_{name}") == [{"date": date(2020, 8, 6)}]


def test_an_incremental_refresh_drops_a_day_gone_from_the_lake(seeded):
    folder = _withdraw_a_day(seeded)
    assert marts.refresh(folder).dates == ["2020-08-07"]  # only the day that went
    assert _rows(folder, "SELECT DISTINCT date FROM mart_station_hourly") == [{"date": date(2020, 8, 6)}]


def test_mart_cli_refreshes_and_reports(seeded, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    _, folder, _ = seeded
    result = CliRunner().invoke(app, ["mart", "refresh", "--lake", str(folder)])
    assert result.exit_code == 0, result.output
    assert "station_hourly" in result.output and "1 day(s)" in result.output
    assert CliRunner().invoke(app, ["mart", "patterns", "--lake", str(folder)]).exit_code == 0


# ── Pattern mining ─────────────────────────────────────────────────────────────────────


def test_trend_test_flags_a_falling_score_and_not_noise():
    days = list(range(30))
    falling = [90 - 0.8 * d + (3 if d % 2 else -3) for d in days]
    tau, p, slope, degrading = patterns.trend(days, falling, alpha=0.05)
    assert degrading and tau < -0.5 and p < 0.01 and slope == pytest.approx(-0.8, abs=0.3)
    flat = [80 + (5 if d % 3 == 0 else -2) for d in days]
    assert not patterns.trend(days, flat, alpha=0.05)[3]
    assert patterns.trend(days, [70.0] * 30, alpha=0.05) == (0.0, 1.0, 0.0, False)


def test_degrading_sensor_found_from_the_quality_mart(sqlite_engine, tmp_path):
    start = datetime(2021, 6, 1, tzinfo=KST)
    with sqlite_engine.begin() as conn:
        healthy = make_stream(conn, "healthy")
        failing = make_stream(conn, "failing")
        for day in range(20):
            moment = start + timedelta(days=day)
            add_readings(conn, healthy, moment, [1.0] * 24, step=timedelta(hours=1))
            # One more reading lost each day: completeness falls steadily.
            add_readings(conn, failing, moment, [1.0] * (24 - day), step=timedelta(hours=1))
    folder = tmp_path / "lake"
    lake.export(sqlite_engine, folder)
    marts.refresh(folder)
    trends = {t.datastream_id: t for t in patterns.degrading_sensors(marts.connect(folder))}
    assert trends[failing].degrading and trends[failing].slope_per_day < 0
    assert not trends[healthy].degrading


def test_trigger_intensity_and_warning_calendar(sqlite_engine, tmp_path):
    from haechi.store import warnings as warning_store

    issued = datetime(2022, 8, 8, 12, tzinfo=UTC)  # 21:00 KST, the Gangnam downpour of 8 August 2022
    with sqlite_engine.begin() as conn:
        rain = make_stream(conn, "rain", prop="rainfall")
        add_readings(conn, rain, issued - timedelta(hours=3), [10.0] * 18)  # 60 mm/h in 10-minute sums
        for i, hazard in enumerate(("heavy_rain", "heat_wave", "heat_wave")):
            warning_store.open_warning(conn, {
                "hazard": hazard, "area_key": f"district:11590:{i}", "area_code": "11590", "level": "advisory",
                "crisis_level": "caution", "datastream_id": rain if hazard == "heavy_rain" else None,
                "criterion": {}, "issued_at": issued - timedelta(days=30 * i), "updated_at": issued})
    folder = tmp_path / "lake"
    lake.export(sqlite_engine, folder)
    marts.refresh(folder)
    con = marts.connect(folder)
    intensity = patterns.trigger_intensity(con)
    assert intensity == [{"district_code": "11590", "what": "warning", "events": 1, "min_intensity": 60.0,
                          "median_intensity": 60.0}]
    calendar = patterns.warning_calendar(con, ["heat_wave"])
    assert calendar["by_month"] == [{"hazard": "heat_wave", "month": 6, "warnings": 1},
                                    {"hazard": "heat_wave", "month": 7, "warnings": 1}]
    assert {r["hour"] for r in calendar["by_hour"]} == {21}


@pytest.mark.skipif(not (SHARED_DATA / "han-river-gauges" / "data_2019.csv").exists(), reason="no shared data")
def test_han_river_gauge_profiles_from_real_data(sqlite_engine, tmp_path):
    """Hangang Bridge, May–October 2019 (HRFCO): the seasonal profile peaks in the monsoon months and the
    Ganghwa tide gives the level a daily cycle at Seoul."""
    with sqlite_engine.begin() as conn:
        stream = make_stream(conn, "Hangang Bridge water level")
    rows = []
    with open(SHARED_DATA / "han-river-gauges" / "data_2019.csv", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            if r["wl_1018683"]:
                moment = datetime.fromisoformat(r["ymdhm"]).replace(tzinfo=KST)
                rows.append({"datastream_id": stream, "phenomenon_time": moment,
                             "result": float(r["wl_1018683"]) / 100 - 2.07,  # cm elevation → gauge height
                             "received_at": moment + timedelta(minutes=1)})
    from haechi.store import sensing

    with sqlite_engine.begin() as conn:
        sensing.add_observations(conn, rows)
    folder = tmp_path / "lake"
    lake.export(sqlite_engine, folder)
    marts.refresh(folder)
    profile = patterns.profiles(marts.connect(folder), "water_level")[stream]
    months = {m + 1: v for m, v in enumerate(profile["month"]) if v is not None}
    assert set(months) == {5, 6, 7, 8, 9, 10}
    assert max(months, key=months.get) in {7, 8, 9}  # 장마 and typhoons (Lingling, Tapah, Mitag in Sept 2019)
    swing, _ = patterns.amplitude(profile["hour"])
    assert swing > 0.05  # a real diurnal swing (tidal reach of the lower Han) of several centimetres


def test_response_times_against_the_golden_time(engine, tmp_path):
    from haechi.store.schema import dispatches, fire_units, incidents, places

    t0 = datetime(2023, 3, 1, 1, tzinfo=UTC)
    with engine.begin() as conn:
        make_stream(conn)  # creates districts 11 and 11590
        station = conn.execute(insert(places).values(kind="fire_station", ref="f1",
                                                     name_ko="동작")).inserted_primary_key[0]
        unit = conn.execute(insert(fire_units).values(station_place_id=station, call_sign="P1", unit_type="pumper",
                                                      status="available")).inserted_primary_key[0]
        for i, (response_s, met) in enumerate([(240.0, True), (360.0, True), (600.0, False)]):
            incident = conn.execute(insert(incidents).values(
                kind="fire", title=f"fire {i}", severity="high", status="closed", center="119", area_code="1159010100",
                source="operator", opened_at=t0, updated_at=t0, created_by="op")).inserted_primary_key[0]
            conn.execute(insert(dispatches).values(
                incident_id=incident, unit_id=unit, dispatched_at=t0 + timedelta(days=i), dispatched_by="op",
                arrived_at=t0 + timedelta(days=i, seconds=response_s), response_s=response_s,
                golden_time_s=420.0, met_golden_time=met))
        pending = conn.execute(insert(incidents).values(
            kind="fire", title="en route", severity="high", status="dispatched", center="119", area_code="11590",
            source="operator", opened_at=t0, updated_at=t0, created_by="op")).inserted_primary_key[0]
        conn.execute(insert(dispatches).values(incident_id=pending, unit_id=unit, dispatched_at=t0,
                                               dispatched_by="op"))
    folder = tmp_path / "lake"
    assert next(r for r in lake.export(engine, folder) if r.dataset == "responses").rows == 3  # arrived only
    marts.refresh(folder)
    rows = _rows(folder, "SELECT * FROM mart_responses_monthly")
    assert len(rows) == 1
    row = rows[0]
    assert (row["kind"], row["district_code"], row["month"], row["dispatches"]) == ("fire", "11590", "2023-03", 3)
    assert row["median_response_s"] == 360.0 and row["share_met_golden_time"] == pytest.approx(2 / 3)
    assert row["golden_time_s"] == 420.0
    assert row["p90_response_s"] == pytest.approx(360 + 0.8 * 240)  # linear interpolation
