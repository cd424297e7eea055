"""The ingest pipeline on a real database: stored once, converted, flagged, dead-lettered, remembered."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from haechi.bus.memory import InProcessBus
from haechi.cities.provision import save_catalogue
from haechi.ingest.pipeline import Pipeline
from haechi.model.reading import Reading, Rejected
from haechi.store import deadletters, sensing

T0 = datetime(2020, 8, 6, 5, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=1)


@pytest.fixture
def stream(engine):
    """One water-level datastream in metres, like the Hangang Bridge gauge's."""
    with engine.begin() as conn:
        property_id = save_catalogue(conn)["water_level"]
        thing = sensing.create_thing(conn, {"name": "Hangang Bridge"}, [sensing.create_location(conn, {
            "name": "한강대교", "location": {"type": "Point", "coordinates": [126.9567, 37.5144]}})])
        sensor = sensing.create_sensor(conn, {"name": "gauge"})
        return sensing.create_datastream(conn, {
            "name": "level", "thing_id": thing, "sensor_id": sensor, "observed_property_id": property_id,
            "unit_name": "metre", "unit_symbol": "m", "unit_definition": "ucum:m"})


def level(stream, minutes, value, unit="cm"):
    return Reading(stream, T0 + timedelta(minutes=minutes), value, unit)


def test_readings_are_converted_flagged_and_stored_once(engine, stream):
    pipeline = Pipeline(engine, now=lambda: NOW)
    batch = [level(stream, 0, 836.0), level(stream, 10, 851.0), level(stream, 20, 99999.0)]
    first = pipeline.store(batch, "test")
    again = pipeline.store(batch, "test")
    assert (first.stored, first.duplicates, first.flags["bad"]) == (3, 0, 1)
    assert (again.stored, again.duplicates) == (0, 3)
    with engine.connect() as conn:
        stored = sensing.observations_of(conn, stream, newest_first=False)
    assert [o["result"] for o in stored] == [8.36, 8.51, 999.99]  # cm → m at the edge
    assert [o["result_quality"] for o in stored] == ["good", "good", "bad"]
    assert "out of range" in stored[2]["qc_reasons"][0]


def test_unknown_streams_and_units_go_to_the_dead_letters_with_their_reason(engine, stream):
    pipeline = Pipeline(engine, now=lambda: NOW)
    report = pipeline.store([
        level(stream, 0, 836.0),
        Reading(stream + 100, T0, 1.0),
        level(stream, 10, 8.5, unit="furlong"),
        Rejected(3, "result must be a number (got 'high')", "result", '{"result": "high"}'),
    ], "mqtt:haechi/v1/1/observations")
    assert (report.stored, len(report.rejected)) == (1, 3)
    with engine.connect() as conn:
        letters = deadletters.pending(conn)
    assert [l["reason"] for l in letters] == [
        f"datastream_id: unknown datastream {stream + 100}",
        "unit: cannot convert 'furlong' to 'm'",
        "result: result must be a number (got 'high')",
    ]
    assert letters[2]["payload"] == '{"result": "high"}' and letters[0]["source"].startswith("mqtt:")


def test_live_state_survives_a_restart_with_its_qc_memory(engine, stream):
    later = NOW + timedelta(days=1)
    first = Pipeline(engine, now=lambda: later)
    assert first.store([level(stream, 10 * i, 300.0) for i in range(71)], "test").flags["good"] == 71
    assert first.state.get(stream).result == 3.0
    restarted = Pipeline(engine, now=lambda: later)
    restarted.warm()
    assert restarted.state.get(stream).phenomenon_time == T0 + timedelta(minutes=700)
    report = restarted.store([level(stream, 710, 300.0)], "test")  # the 72nd: stuck, remembered across restart
    assert report.flags["suspect"] == 1


def test_an_older_reading_does_not_replace_the_newest_in_the_live_state(engine, stream):
    pipeline = Pipeline(engine, now=lambda: NOW)
    pipeline.store([level(stream, 20, 850.0)], "test")
    pipeline.store([level(stream, 10, 840.0)], "test")  # late backfill
    assert pipeline.state.get(stream).result == 8.5
    with engine.connect() as conn:
        [row] = sensing.stream_states(conn)
    assert row["result"] == 8.5


def test_stored_batches_are_published_on_the_bus(engine, stream):
    bus, seen = InProcessBus(), []

    async def listen(event):
        seen.append(event)

    bus.subscribe("observation.>", listen)
    pipeline = Pipeline(engine, bus=bus, now=lambda: NOW)
    asyncio.run(pipeline.ingest([level(stream, 0, 836.0)], "test"))
    [event] = seen
    assert event.type == "observation.stored"
    assert event.data["observations"][0] | {"phenomenon_time": None} == {
        "datastream_id": stream, "phenomenon_time": None, "result": 8.36, "quality": "good"}
