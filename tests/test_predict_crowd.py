"""Crowd safety: density, Fruin level of service, trend and time to danger, forecasts feeding warnings."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from pydantic import ValidationError
from sqlalchemy import select

from haechi.bus.memory import InProcessBus
from haechi.core.errors import InvalidInput
from haechi.predict import crowd, live
from haechi.predict.publish import announce
from haechi.simulation.registry import kinds
from haechi.store import places as place_store
from haechi.store import sensing
from haechi.store import warnings as warning_store
from haechi.store.schema import observed_properties
from haechi.warnings.service import WarningService


def test_density_and_fruin_levels_of_service_from_the_table():
    d = crowd.density(np.array([30, 500, 1200]), np.array([100.0, 500.0, 200.0]))
    assert d.tolist() == pytest.approx([0.3, 1.0, 6.0])
    # walkway: A < 0.31, D 0.71–1.08, F > 2.15 persons/m² (Fruin 1971)
    assert crowd.level_of_service(d).tolist() == ["A", "D", "F"]
    # queuing: B 0.83–1.11, F ≥ 5 persons/m²
    assert crowd.level_of_service(d, "queue").tolist() == ["A", "B", "F"]


def test_trend_and_minutes_to_the_warning_and_dangerous_densities_by_hand():
    # 200 m²; +100 people a minute = +0.5 /m² a minute; 3.0 /m² now
    result = crowd.assess(np.array([[100, 200, 300, 400, 500, 600]]), np.array([200.0]), 1)
    assert result["trend_per_min"][0] == pytest.approx(0.5)
    assert result["minutes_to_warning"][0] == pytest.approx((4.7 - 3.0) / 0.5)
    assert result["minutes_to_danger"][0] == pytest.approx((5.55 - 3.0) / 0.5)
    assert result["forecast"][10][0] == pytest.approx(8.0)
    steady = crowd.assess(np.array([[400, 400, 400]]), np.array([200.0]), 1)
    assert steady["minutes_to_danger"][0] == np.inf  # not rising: no time to danger
    packed = crowd.assess(np.array([[1200]]), np.array([200.0]), 1)
    assert packed["minutes_to_danger"][0] == 0.0  # already dangerous


def test_bad_crowd_input_names_the_field():
    with pytest.raises(InvalidInput) as error:
        crowd.density(np.array([10]), np.array([0.0]))
    assert error.value.field == "area_m2"
    with pytest.raises(InvalidInput) as error:
        crowd.density(np.array([-1]), np.array([10.0]))
    assert error.value.field == "counts"
    with pytest.raises(InvalidInput) as error:
        crowd.assess(np.empty((1, 0)), np.array([10.0]), 1)
    assert error.value.field == "counts"
    with pytest.raises(ValidationError) as bad:
        crowd.CrowdScenario(zones=[])
    assert bad.value.errors()[0]["loc"] == ("zones",)
    with pytest.raises(ValidationError):
        crowd.CrowdScenario(zones=[{"name": "골목", "area_m2": -5, "inflow_per_min": 10}])


def test_crowd_simulation_finds_when_an_alley_becomes_dangerous():
    kind = kinds()["crowd"]
    params = kind.params(zones=[
        {"name": "해밀톤호텔 옆 골목", "area_m2": 180, "start": 100, "inflow_per_min": 40, "outflow_per_min": 10,
         "lon": 126.9944, "lat": 37.5347},
        {"name": "넓은 광장", "area_m2": 5000, "start": 500, "inflow_per_min": 20},
    ], minutes=60)
    result = kind.run(None, params, lambda *a: None)
    alley, square = result["areas"]
    # (100 + 30 t) / 180 reaches 4.7 at t = 24.9 min and 5.55 at t = 29.97 min: first whole minutes 25 and 30
    assert alley["minutes_to_warning"] == 25.0 and alley["minutes_to_danger"] == 30.0
    assert square["minutes_to_danger"] is None and square["peak_los"] in "ABCDEF"
    assert result["summary"]["dangerous_zones"] == 1
    json.loads(json.dumps(result))  # stored as a scenario: plain JSON, no numpy types
    assert result["features"]["features"][0]["geometry"]["coordinates"] == [126.9944, 37.5347]


def test_a_rising_crowd_forecast_warns_before_the_zone_is_dangerous(engine):
    """Observed densities stay below 4.7/m², but their trend says 10 minutes on they will not."""
    with engine.begin() as conn:
        prop = conn.execute(select(observed_properties.c.id)
                            .where(observed_properties.c.code == "crowd_density")).scalar()
        prop = prop or sensing.create_observed_property(conn, {
            "code": "crowd_density", "name": "Crowd density", "definition": "persons per m²"})
        place_store.save_places(conn, [{"kind": "cctv", "ref": "itaewon-1", "name_ko": "이태원 골목 CCTV",
                                        "name_en": "Itaewon alley CCTV", "lon": 126.9944, "lat": 37.5347}])
        place_id = place_store.list_places(conn, "cctv")[0]["id"]
        thing = sensing.create_thing(conn, {"name": "zone 1", "description": "이태원 골목", "place_id": place_id})
        sensor = sensing.create_sensor(conn, {"name": "cctv", "description": "", "encoding_type": "text/plain",
                                              "metadata": ""})
        stream = sensing.create_datastream(conn, {
            "name": "zone 1 density", "thing_id": thing, "sensor_id": sensor, "observed_property_id": prop,
            "unit_name": "persons per square metre", "unit_symbol": "/m2", "unit_definition": "ucum:/m2"})
    t0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)

    async def run() -> None:
        bus = InProcessBus()
        service = WarningService(engine, bus)
        await service.start()
        for i, value in enumerate([2.0, 2.4, 2.8, 3.2, 3.6, 4.0, 4.4]):  # every minute
            with engine.begin() as conn:
                sensing.add_observations(conn, [{"datastream_id": stream, "phenomenon_time": t0 + timedelta(minutes=i),
                                                 "result": value}])
            await announce(bus, live.forecast_crowds(engine))
        service.stop()

    asyncio.run(run())
    with engine.connect() as conn:
        [warning] = warning_store.list_warnings(conn)
    assert warning["hazard"] == "crowd" and warning["criterion"]["property"] == "forecast_crowd_density_10m"
    assert warning["level"] == "serious" and warning["value"] >= 5.55  # 4.4 + 0.4 × 10 = 8.4 /m² expected
