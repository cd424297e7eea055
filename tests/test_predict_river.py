"""River stage forecast: least squares recovers a known system, the shipped model beats persistence on
held-out years, and a forecast crossing a flood stage raises an 'expected to exceed' warning."""

from __future__ import annotations

import asyncio
import csv
import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from conftest import SHARED_DATA
from lxml import etree
from sqlalchemy import select

from haechi.bus.memory import InProcessBus
from haechi.cities.provision import provision_stations
from haechi.core.clock import KST
from haechi.core.errors import InvalidInput
from haechi.ingest.pipeline import Pipeline
from haechi.model.reading import Reading
from haechi.predict import live, river
from haechi.predict.auto import RiverForecaster
from haechi.predict.publish import announce, forecast_stream, store_forecasts
from haechi.store import places as place_store
from haechi.store import sensing
from haechi.store import warnings as warning_store
from haechi.store.schema import alerts, datastreams, observations, observed_properties
from haechi.warnings.service import WarningService

SCENARIO = river.Path(river.__file__).parents[1] / "demo" / "scenarios" / "han-river-flood-2020.csv"
GAUGE_DATA = SHARED_DATA / "han-river-gauges"


def synthetic(n: int = 600, seed: int = 1) -> river.Series:
    rng = np.random.default_rng(seed)
    release = 1000 + np.cumsum(rng.normal(0, 40, n))
    flow = 800 + np.cumsum(rng.normal(0, 30, n))
    level = np.zeros(n)
    for t in range(1, n):  # the level follows the release with a lag, plus noise
        level[t] = 0.9 * level[t - 1] + 0.0002 * release[max(t - 12, 0)] + rng.normal(0, 0.01)
    times = [datetime(2020, 7, 1) + river.STEP * k for k in range(n)]
    return river.Series(times, dict.fromkeys(river.GAUGES, level), release, flow)


def test_least_squares_fit_explains_a_linear_system_better_than_persistence():
    train, test = synthetic(seed=1), synthetic(seed=2)
    model = river.fit([train])
    assert set(model) == {"full", "no_upstream"} and set(model["full"]) == {"normal", "high"}
    assert len(model["full"]["normal"]["1018683"]["1h"]) == 1 + len(river.FEATURES)
    scores = {(s["gauge"], s["horizon_h"]): s for s in river.backtest(model, [test])}
    for h in river.HORIZONS_H:
        assert scores[("1018683", h)]["rmse_m"] < 0.8 * scores[("1018683", h)]["persistence_rmse_m"]


def test_predict_change_is_the_linear_combination_worked_by_hand():
    coef = [0.1, 1.0, 2.0]  # intercept, level, rise_10m
    assert river.predict_change(coef, np.array([[3.0, 0.5, 99.0]]))[0] == pytest.approx(0.1 + 3.0 + 1.0)


def test_the_shipped_model_beats_persistence_rmse_on_held_out_2020_2021_at_every_gauge_and_horizon():
    shipped = river.shipped()
    assert shipped["trained_on"].endswith("2012–2019, 10-minute records") and "2020–2021" in shipped["tested_on"]
    for s in shipped["backtest"]:
        assert s["n"] > 40_000
        assert s["rmse_m"] < s["persistence_rmse_m"], s
        if s["horizon_h"] == 1:
            assert s["mae_m"] < s["persistence_mae_m"], s


@pytest.mark.skipif(not GAUGE_DATA.exists(), reason="needs ../shared/data/han-river-gauges")
def test_the_shipped_figures_are_reproduced_from_the_records():
    model = river.shipped()
    scores = river.backtest(model["coefficients"], [river.read_year(GAUGE_DATA, 2020)])
    hangang = {s["horizon_h"]: s for s in scores if s["gauge"] == "1018683"}
    assert hangang[1]["rmse_m"] < hangang[1]["persistence_rmse_m"]
    assert 0.03 < hangang[1]["rmse_m"] < 0.3  # same order as the shipped 2020–2021 figure
    year = river.read_year(GAUGE_DATA, 2020)
    assert np.nanmax(year.levels["1018683"]) == pytest.approx(10.80 - 2.07, abs=0.01)  # the 2020-08-06 peak


def scenario() -> list[dict[str, str]]:
    with open(SCENARIO, encoding="utf-8") as f:
        return list(csv.DictReader(f))


def series_until(rows: list[dict[str, str]], end: str) -> river.Series:
    rows = [r for r in rows if r["time_kst"] <= end]
    column = lambda k: np.array([float(r[k]) if r[k] else np.nan for r in rows])
    return river.Series([datetime.fromisoformat(r["time_kst"]) for r in rows],
                        {"1018683": column("hangang_level_m")}, column("paldang_release_m3s"),
                        column("cheongdam_flow_m3s"))


def test_in_the_august_2020_flood_the_forecast_reaches_the_advisory_stage_before_the_river_does():
    rows = scenario()
    observed_crossing = next(r["time_kst"] for r in rows if r["hangang_level_m"] and float(r["hangang_level_m"]) >= 8.5)
    assert observed_crossing == "2020-08-06 12:00"
    early = series_until(rows, "2020-08-06 10:20")  # 1 h 40 min before, the level is 8.09 m
    ahead = river.forecast(early, "1018683")
    assert early.levels["1018683"][-1] < 8.1 and ahead[2] >= 8.5 and ahead[3] >= 8.5
    assert max(ahead.values()) < 8.9  # the peak that day was 8.73 m: no wild overshoot
    assert ahead[1] < ahead[2] < ahead[3]  # rising


def test_bad_forecast_requests_get_clear_errors():
    rows = scenario()
    with pytest.raises(InvalidInput) as error:
        river.forecast(series_until(rows, "2020-08-06 09:30"), "9999999")
    assert error.value.field == "gauge"
    with pytest.raises(InvalidInput) as error:
        river.forecast(series_until(rows, "2020-08-01 00:30"), "1018683")
    assert error.value.field == "series"
    gap = series_until(rows, "2020-08-06 09:30")
    gap.levels["1018683"][-4] = np.nan  # a missing reading the 30-minute rise needs: no forecast, not a wrong one
    assert river.forecast(gap, "1018683") == {1: None, 2: None, 3: None}


# ── forecasts in the integrated DB, and through the warnings engine ──

def provision(conn) -> dict[str, int]:
    place_store.save_places(conn, [
        {"kind": "river_gauge", "ref": "1018683", "name_ko": "한강대교", "name_en": "Hangang Bridge",
         "lon": 126.956667, "lat": 37.514444, "river": "Han River", "advisory_stage_m": 8.5, "warning_stage_m": 10.5},
        {"kind": "river_gauge", "ref": "1018662", "name_ko": "청담대교", "name_en": "Cheongdam Bridge",
         "lon": 127.062778, "lat": 37.523056, "river": "Han River"},
        {"kind": "dam", "ref": "paldang", "name_ko": "팔당댐", "name_en": "Paldang Dam", "lon": 127.281, "lat": 37.524},
    ])
    provision_stations(conn)
    streams = live.station_streams(conn, ("river_gauge", "dam"), ("water_level", "discharge"))
    return {"level": streams[("river_gauge", "1018683", "water_level")],
            "release": streams[("dam", "paldang", "discharge")],
            "upstream": streams[("river_gauge", "1018662", "discharge")]}


def feed(conn, ids: dict[str, int], rows: list[dict[str, str]]) -> None:
    columns = {"level": "hangang_level_m", "release": "paldang_release_m3s", "upstream": "cheongdam_flow_m3s"}
    sensing.add_observations(conn, [
        {"datastream_id": ids[k], "phenomenon_time": datetime.fromisoformat(r["time_kst"]).replace(tzinfo=KST),
         "result": float(r[c])} for r in rows for k, c in columns.items() if r[c]])


def test_forecasts_are_stored_as_observations_of_their_own_datastreams(engine):
    rows = [r for r in scenario() if "2020-08-06 06:00" <= r["time_kst"] <= "2020-08-06 10:20"]
    with engine.begin() as conn:
        ids = provision(conn)
        feed(conn, ids, rows)
    stored = live.forecast_rivers(engine)
    assert {o["phenomenon_time"] for o in stored} == {
        (datetime(2020, 8, 6, 10, 20, tzinfo=KST) + timedelta(hours=h)).astimezone(UTC).isoformat()
        for h in (1, 2, 3)}
    with engine.connect() as conn:
        ds, op = datastreams.c, observed_properties.c
        made = dict(conn.execute(select(op.code, ds.id).join(observed_properties, op.id == ds.observed_property_id)
                                 .where(op.code.like("forecast_water_level_%"))).all())
        assert set(made) == {"forecast_water_level_1h", "forecast_water_level_2h", "forecast_water_level_3h"}
        three = sensing.observations_of(conn, made["forecast_water_level_3h"])
        assert len(three) == 1 and three[0]["result"] >= 8.5 and three[0]["parameters"]["model"] == "river-arx"
        assert (sensing.get_datastream(conn, made["forecast_water_level_3h"])["properties"]["forecast_of"]
                == ids["level"])
    assert live.forecast_rivers(engine) == []  # the same forecast again is not stored twice


def test_a_forecast_crossing_the_flood_stage_issues_an_expected_to_exceed_warning(engine):
    """At 10:30 on 2020-08-06 the river is at 8.19 m, but two forecasts in a row pass 8.5 m: 홍수주의보
    expected, 1 h 30 min before the river itself reached the stage (12:00)."""
    rows = [r for r in scenario() if "2020-08-06 06:00" <= r["time_kst"] <= "2020-08-06 10:30"]
    with engine.begin() as conn:
        ids = provision(conn)
        feed(conn, ids, rows[:-6])

    async def run() -> None:
        bus = InProcessBus()
        service = WarningService(engine, bus)
        await service.start()
        for row in rows[-6:]:  # one reading every 10 minutes, and a forecast after each
            with engine.begin() as conn:
                feed(conn, ids, [row])
            await announce(bus, live.forecast_rivers(engine))
        service.stop()

    asyncio.run(run())
    with engine.connect() as conn:
        assert max(o["result"] for o in sensing.observations_of(conn, ids["level"])) < 8.5  # not yet observed
        [warning] = warning_store.list_warnings(conn)
        assert (warning["hazard"], warning["area_key"], warning["level"]) == (
            "river_flood", "gauge:1018683", "advisory")
        assert warning["criterion"]["property"].startswith("forecast_water_level_")
        assert warning["value"] >= 8.5
        alert = conn.execute(select(alerts).where(alerts.c.warning_id == warning["id"])).first()
        assert alert is not None and alert.certainty == "Likely" and "Likely" in alert.cap_xml
        assert conn.execute(select(observations.c.id).where(observations.c.result_time.is_not(None))).first()


def test_forecasts_run_by_themselves_on_gauge_readings_and_warn_at_the_time_they_were_made(engine):
    """Readings alone, through the real pipeline, bring the forecast warning: the river forecaster
    runs on each gauge reading. The advisory is stamped 10:30 KST, when the reading it was forecast
    from came in, with the forecast's valid time as its CAP onset (not the other way round)."""
    rows = [r for r in scenario() if "2020-08-06 06:00" <= r["time_kst"] <= "2020-08-06 10:30"]
    with engine.begin() as conn:
        ids = provision(conn)
        feed(conn, ids, rows[:-6])
    columns = {"level": "hangang_level_m", "release": "paldang_release_m3s", "upstream": "cheongdam_flow_m3s"}

    async def run() -> None:
        bus = InProcessBus()
        pipeline = Pipeline(engine, bus=bus)
        await asyncio.to_thread(pipeline.warm)
        warnings, forecaster = WarningService(engine, bus), RiverForecaster(engine, bus)
        await warnings.start()
        await forecaster.start()  # forecasts from 09:40, the newest stored reading, no warning yet
        for row in rows[-6:]:
            at = datetime.fromisoformat(row["time_kst"]).replace(tzinfo=KST)
            await pipeline.ingest([Reading(ids[k], at, float(row[c])) for k, c in columns.items() if row[c]], "test")
            await forecaster.settled()  # runs happen off the ingest path: let each reading's run be made
        await forecaster.stop()
        warnings.stop()

    asyncio.run(run())
    with engine.connect() as conn:
        [warning] = warning_store.list_warnings(conn)
        assert warning["criterion"]["property"].startswith("forecast_water_level_")
        assert warning["issued_at"] == datetime(2020, 8, 6, 10, 30, tzinfo=KST)
        alert = conn.execute(select(alerts).where(alerts.c.warning_id == warning["id"])).first()
    cap = etree.fromstring(alert.cap_xml.encode())
    ns = {"cap": "urn:oasis:names:tc:emergency:cap:1.2"}
    onset = datetime.fromisoformat(cap.findtext("cap:info/cap:onset", namespaces=ns))
    assert onset >= datetime(2020, 8, 6, 11, 30, tzinfo=KST)  # an hour or more after it was issued
    assert alert.certainty == "Likely" and "20200806T013000Z" in alert.identifier
    forecast_for = {p.findtext("cap:valueName", namespaces=ns): p.findtext("cap:value", namespaces=ns)
                    for p in cap.findall("cap:info/cap:parameter", namespaces=ns)}
    assert datetime.fromisoformat(forecast_for["HAECHI-FORECAST-FOR"]) == onset


def test_a_later_forecast_for_the_same_hour_replaces_the_earlier_and_an_older_one_does_not(engine):
    with engine.begin() as conn:
        ids = provision(conn)
        target = forecast_stream(conn, ids["level"], "forecast_water_level_1h")
        valid = datetime(2020, 8, 6, 12, tzinfo=KST)
        first = store_forecasts(conn, target, [(valid, 8.4)], valid - timedelta(hours=1), "river-arx")
        revised = store_forecasts(conn, target, [(valid, 8.7)], valid - timedelta(minutes=50), "river-arx")
        stale = store_forecasts(conn, target, [(valid, 8.0)], valid - timedelta(hours=2), "river-arx")
        [kept] = sensing.observations_of(conn, target)
    assert [o["result"] for o in first + revised] == [8.4, 8.7] and stale == []
    assert kept["result"] == 8.7 and kept["result_time"] == valid - timedelta(minutes=50)
    assert revised[0]["result_time"] == (valid - timedelta(minutes=50)).astimezone(UTC).isoformat()


def test_shipped_coefficients_file_names_its_provenance_and_refit_command():
    doc = json.loads(river.DATA.read_text(encoding="utf-8"))
    assert "한강홍수통제소" in doc["data_source"] and doc["refit"].startswith("python -m haechi.predict.river")
    assert doc["feature_sets"]["no_upstream"] == list(river.FEATURES[:7])
