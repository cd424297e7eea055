"""Work triggered by readings is coalesced per stream and runs off the ingest path (issue 17).

A river forecast used to run inside the ingest of every gauge reading: a fast gauge stalled the
ingest, and the MQTT broker dropped everyone's readings. Orders and counts here, never durations.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from test_predict_river import feed, provision, scenario
from test_sensors_first_class import eventually

from haechi.api.app import create_app
from haechi.bus.memory import InProcessBus
from haechi.core.clock import KST
from haechi.core.coalesce import Coalescer
from haechi.core.settings import Settings
from haechi.ingest.pipeline import Pipeline
from haechi.model.reading import Reading
from haechi.predict import live
from haechi.predict.auto import RiverForecaster, trigger_interval
from haechi.store import access
from haechi.store import warnings as warning_store
from haechi.store.schema import observations
from haechi.warnings.service import WarningService

T0 = datetime(2024, 7, 1, tzinfo=UTC)
PATIENCE = 120.0  # seconds before a hung ingest fails the test instead of hanging it


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# ── the coalescer (pure) ─────────────────────────────────────────────────────────────────


def test_a_stream_runs_at_most_once_per_interval_of_its_readings_time_on_the_latest():
    c: Coalescer[int] = Coalescer(timedelta(seconds=60), linger=30.0)
    c.offer(1, at(0), now=0.0)
    assert c.due(now=0.0) == [(1, at(0))]  # the first reading runs at once
    for s in range(1, 50):  # a babbling stream: 49 readings inside the interval
        c.offer(1, at(s * 0.5), now=0.1)
    c.offer(1, at(10), now=0.1)  # an older reading arriving late adds nothing
    assert c.due(now=1.0) == [] and c.pending == 1
    c.offer(1, at(60), now=2.0)
    assert c.due(now=2.0) == [(1, at(60))]  # an interval on: the latest reading, once
    assert c.due(now=3.0) == []


def test_the_last_reading_of_a_burst_still_runs_once_it_has_lingered():
    c: Coalescer[str] = Coalescer(timedelta(seconds=60), linger=30.0)
    c.offer("gauge", at(0), now=0.0)
    c.due(now=0.0)
    c.offer("gauge", at(5), now=1.0)
    c.offer("gauge", at(7), now=2.0)
    assert c.due(now=30.0) == [] and c.next_linger_end() == 31.0
    assert c.due(now=31.0) == [("gauge", at(7))]
    c.offer("gauge", at(6), now=40.0)  # already covered by the run at 7 s
    assert c.pending == 0


def test_streams_are_coalesced_each_on_their_own():
    c: Coalescer[int] = Coalescer(timedelta(seconds=60), linger=30.0)
    for n in range(1000):
        c.offer(1, at(n / 100), now=0.0)
    c.offer(2, at(3), now=0.0)
    assert sorted(c.due(now=0.0)) == [(1, at(9.99)), (2, at(3))]


def test_the_interval_is_read_from_the_data_file():
    assert trigger_interval("river") == timedelta(minutes=5)


# ── the forecaster, through the real pipeline and warnings engine ────────────────────────


def _hangang(rows_from: str, rows_to: str) -> list[dict[str, str]]:
    return [r for r in scenario() if rows_from <= r["time_kst"] <= rows_to]


def _readings(ids: dict[str, int], row: dict[str, str]) -> list[Reading]:
    columns = {"level": "hangang_level_m", "release": "paldang_release_m3s", "upstream": "cheongdam_flow_m3s"}
    when = datetime.fromisoformat(row["time_kst"]).replace(tzinfo=KST)
    return [Reading(ids[k], when, float(row[c])) for k, c in columns.items() if row[c]]


def _issue_times(engine) -> set[datetime]:
    o = observations.c
    with engine.connect() as conn:
        return {t if t.tzinfo else t.replace(tzinfo=UTC)
                for t in conn.execute(select(o.result_time).where(o.result_time.is_not(None))).scalars()}


def test_while_the_model_is_busy_readings_are_stored_and_its_next_run_takes_the_latest(engine):
    """The forecaster is held busy (its run lock taken): the ingest of three gauge readings returns
    all the same; once free, it runs on the first reading (already taken) and then only on the
    newest, never on the one in between."""
    rows = _hangang("2020-08-06 06:00", "2020-08-06 10:50")
    with engine.begin() as conn:
        ids = provision(conn)
        feed(conn, ids, rows[:-3])

    async def run() -> RiverForecaster:
        bus = InProcessBus()
        pipeline = Pipeline(engine, bus=bus)
        await asyncio.to_thread(pipeline.warm)
        forecaster = RiverForecaster(engine, bus, interval=timedelta(minutes=5), linger=0)
        await forecaster.start()
        await asyncio.wait_for(forecaster.settled(), PATIENCE)  # its catch-up from 10:20, stored before it started
        async with forecaster.lock:  # the model is busy
            for row in rows[-3:]:  # 10:30, 10:40, 10:50
                await asyncio.wait_for(pipeline.ingest(_readings(ids, row), "test"), PATIENCE)
            assert forecaster.runs == 1  # the catch-up alone
        await asyncio.wait_for(forecaster.settled(), PATIENCE)
        await forecaster.stop()
        return forecaster

    forecaster = asyncio.run(run())
    assert forecaster.runs == 3
    assert _issue_times(engine) == {datetime(2020, 8, 6, 10, 20, tzinfo=KST), datetime(2020, 8, 6, 10, 30, tzinfo=KST),
                                    datetime(2020, 8, 6, 10, 50, tzinfo=KST)}


def test_a_babbling_gauge_delays_no_other_streams_reading_nor_its_warning(engine):
    """Cheongdam's gauge babbles (200 readings in 50 s) while the model is busy: Hangang's reading
    above its flood stage is stored and warned all the same, and the babble costs one run."""
    rows = _hangang("2020-08-06 06:00", "2020-08-06 10:20")
    with engine.begin() as conn:
        ids = provision(conn)
        feed(conn, ids, rows)
        babbler = live.station_streams(conn, ("river_gauge",), ("water_level",))[("river_gauge", "1018662",
                                                                                   "water_level")]
    start = datetime(2020, 8, 6, 10, 30, tzinfo=KST)

    async def run() -> tuple[RiverForecaster, list[dict]]:
        bus = InProcessBus()
        pipeline = Pipeline(engine, bus=bus)
        await asyncio.to_thread(pipeline.warm)
        warnings, forecaster = WarningService(engine, bus), RiverForecaster(engine, bus)
        await warnings.start()
        await forecaster.start()
        await asyncio.wait_for(forecaster.settled(), PATIENCE)  # its catch-up from Hangang's 10:20
        async with forecaster.lock:  # the model is busy for as long as the babble lasts
            for n in range(200):
                babble = Reading(babbler, start + timedelta(seconds=n / 4), 3.0 + (n % 7) / 100)
                await asyncio.wait_for(pipeline.ingest([babble], "test"), PATIENCE)
            flood = Reading(ids["level"], start + timedelta(seconds=50), 8.6)  # above the 8.5 m advisory stage
            await asyncio.wait_for(pipeline.ingest([flood], "test"), PATIENCE)
            with engine.connect() as conn:
                warned = warning_store.list_warnings(conn)
            assert forecaster.runs == 1  # the catch-up: all of the above happened before any other forecast
        await asyncio.wait_for(forecaster.settled(), PATIENCE)
        await forecaster.stop()
        warnings.stop()
        return forecaster, warned

    forecaster, warned = asyncio.run(run())
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).where(observations.c.datastream_id == babbler)).scalar() == 200
    assert [(w["area_key"], w["level"], w["criterion"]["property"]) for w in warned] == [
        ("gauge:1018683", "advisory", "water_level")]
    # the catch-up, one run for the babbler's first reading, one for Hangang; the babble's latest waits
    assert forecaster.runs == 3 and forecaster.pending.pending == 1


# ── nothing noted is lost when the forecaster stops ──────────────────────────────────────


def test_readings_stored_while_no_forecaster_ran_are_forecast_when_one_starts(engine):
    """The engine was down (a crash, a failover) while an API replica stored Hangang's readings over
    HTTP: their events were taken by no forecaster. The engine that starts next forecasts from the
    newest of them (once: from none before it), for staff to read and the warnings engine to judge."""
    rows = _hangang("2020-08-06 06:00", "2020-08-06 10:30")
    with engine.begin() as conn:
        ids = provision(conn)
        feed(conn, ids, rows[:-4])
        _, device = access.create_token(conn, "gauge gateway", "device")
        _, operator = access.create_token(conn, "duty officer", "operator")
    readings = [{"datastream_id": r.datastream_id, "phenomenon_time": r.phenomenon_time.isoformat(),
                 "result": r.result} for row in rows[-4:] for r in _readings(ids, row)]
    with TestClient(create_app(engine, Settings(river_forecasts=False))) as api_only:
        stored = api_only.post("/api/v1/observations", json=readings, headers={"Authorization": f"Bearer {device}"})
        assert stored.status_code == 200 and stored.json()["stored"] == len(readings)
    assert _issue_times(engine) == set()

    newest = datetime(2020, 8, 6, 10, 30, tzinfo=KST)
    with TestClient(create_app(engine, Settings())) as engine_back:
        forecasts = eventually(lambda: [f for f in engine_back.get(
            "/api/v1/predictions", headers={"Authorization": f"Bearer {operator}"}).json()
            if datetime.fromisoformat(f["issued_at"]) == newest] or None, PATIENCE)
    assert sorted(f["property"] for f in forecasts) == [
        "forecast_water_level_1h", "forecast_water_level_2h", "forecast_water_level_3h"]
    assert all(f["forecast_of"] == ids["level"] for f in forecasts)
    assert _issue_times(engine) == {newest}  # one run, from the newest reading, none from those before
