"""Heat-health risk: KMA apparent temperature, 폭염 영향예보 steps, vulnerability by hand, shelters."""

from __future__ import annotations

import asyncio
import json
from datetime import date

import numpy as np
import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from haechi.bus.memory import InProcessBus
from haechi.cities.provision import provision_stations
from haechi.core.errors import InvalidInput
from haechi.model.apparent import apparent_temperature
from haechi.predict import heat, live
from haechi.predict.publish import announce
from haechi.simulation.registry import kinds
from haechi.store import areas as area_store
from haechi.store import places as place_store
from haechi.store import warnings as warning_store
from haechi.store.schema import observations, warnings
from haechi.warnings.service import WarningService


def test_apparent_temperature_is_the_warnings_engines_formula_element_wise():
    ta, rh = np.array([30.0, 33.0, 35.0]), np.array([60.0, 70.0, 50.0])
    assert heat.apparent(ta, rh).tolist() == pytest.approx([apparent_temperature(t, r)
                                                             for t, r in zip(ta, rh, strict=True)])


def test_daily_maxima_and_the_kma_impact_forecast_steps():
    hourly = np.concatenate([np.full(24, 30.0), np.full(24, 34.0), [38.5] * 5])
    assert heat.daily_max(hourly)[0].tolist() == [30.0, 34.0, 38.5]
    cfg = heat.config()
    # 관심 31, 주의 33, 경고 35, 위험 38 °C (기상청 폭염 영향예보)
    assert [cfg.levels[i] for i in heat.hazard_level([30.9, 31.0, 33.0, 34.9, 35.0, 38.0])] == [
        "none", "attention", "caution", "caution", "warning", "danger"]


def test_vulnerability_by_hand():
    # City: 300 people, 45 aged 65+ (15 %), 9 living alone (3 %).
    # Area 1: 20 % aged 65+ → 1.333, 4 % alone → 1.333; area 2: 12.5 % → 0.833, 2.5 % → 0.833 (weights 0.5/0.5)
    counts = np.array([[20.0, 4.0], [25.0, 5.0]])
    population = np.array([100.0, 200.0])
    assert heat.vulnerability(counts, population).tolist() == pytest.approx([4 / 3, 5 / 6])
    unknown = np.array([[20.0, np.nan], [25.0, 5.0]])  # an unknown group counts as the city average
    assert heat.vulnerability(unknown, population)[0] == pytest.approx(0.5 * 4 / 3 + 0.5 * 1.0)
    with pytest.raises(InvalidInput) as error:
        heat.vulnerability(counts, np.array([100.0, 0.0]))
    assert error.value.field == "population"


def test_risk_is_the_worst_days_hazard_score_times_vulnerability():
    result = heat.assess(np.array([[32.0, 36.0], [32.0, 36.0]]), np.array([1.5, 0.5]))
    assert result["risk"].tolist() == [4.5, 1.5] and result["worst_day"].tolist() == [1, 1]  # 경고 = 3 points


def test_bad_weather_input_names_the_field():
    with pytest.raises(InvalidInput) as error:
        heat.apparent(np.array([30.0]), np.array([120.0]))
    assert error.value.field == "relative_humidity_pct"
    with pytest.raises(InvalidInput) as error:
        heat.apparent(np.array([]), np.array([]))
    assert error.value.field == "air_temperature_c"
    with pytest.raises(ValidationError) as bad:
        heat.HeatScenario(air_temperature_c=[30, 31, 32], relative_humidity_pct=[50, 60])
    assert "one per hour" in str(bad.value)


def seed(conn) -> None:
    square = {"type": "Polygon", "coordinates": [[[127.0, 37.5], [127.01, 37.5], [127.01, 37.51], [127.0, 37.5]]]}
    area_store.save_areas(conn, [
        {"code": "11", "level": "city", "name_ko": "서울특별시"},
        {"code": "11110", "level": "district", "parent_code": "11", "name_ko": "종로구", "geometry": square},
        {"code": "11680", "level": "district", "parent_code": "11", "name_ko": "강남구", "geometry": square},
    ])
    area_store.save_statistics(conn, [
        {"area_code": "11110", "indicator": "population", "year": 2019, "value": 1000, "source": "t"},
        {"area_code": "11110", "indicator": "age_65_plus", "year": 2019, "value": 250, "source": "t"},
        {"area_code": "11110", "indicator": "elderly_living_alone", "year": 2019, "value": 80, "source": "t"},
        {"area_code": "11680", "indicator": "population", "year": 2019, "value": 3000, "source": "t"},
        {"area_code": "11680", "indicator": "age_65_plus", "year": 2019, "value": 350, "source": "t"},
        {"area_code": "11680", "indicator": "elderly_living_alone", "year": 2019, "value": 70, "source": "t"},
    ])
    place_store.save_places(conn, [
        {"kind": "shelter", "ref": "c1", "name_ko": "종로 경로당", "area_code": "11110",
         "shelter_kind": "cooling", "capacity": 30},
        {"kind": "shelter", "ref": "c2", "name_ko": "종로 주민센터", "area_code": "11110",
         "shelter_kind": "cooling", "capacity": 20},
        {"kind": "shelter", "ref": "x1", "name_ko": "민방위 대피소", "area_code": "11680",
         "shelter_kind": "civil_defence", "capacity": 500},
    ])


def test_heat_simulation_ranks_the_older_district_first_with_its_cooling_shelters(engine):
    with engine.begin() as conn:
        seed(conn)
    kind = kinds()["heat"]
    day = [27, 27, 26, 26, 26, 27, 28, 30, 31, 32, 33, 34, 35, 35, 36, 35, 34, 33, 31, 30, 29, 28, 28, 27]
    result = kind.run(engine, kind.params(air_temperature_c=day * 2, relative_humidity_pct=[55]), lambda *a: None)
    assert result["summary"]["hazard_by_day"] == ["warning", "warning"]  # 체감 max ≈ 36 °C: 경고
    first, second = result["areas"]
    assert first["code"] == "11110" and first["vulnerability"] > 1 > second["vulnerability"]
    assert first["cooling_shelters"] == 2 and first["cooling_capacity"] == 50 and first["elderly_per_place"] == 5.0
    assert second["cooling_shelters"] == 0 and second["cooling_capacity"] is None  # civil-defence shelters don't count
    assert "outdoor_workers" in result["summary"]["missing_data"]
    json.loads(json.dumps(result))  # stored as a scenario: plain JSON, no numpy types
    assert result["features"]["features"][0]["properties"]["code"] == "11110"
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(observations)).scalar() == 0
        assert conn.execute(select(func.count()).select_from(warnings)).scalar() == 0


def test_without_statistics_the_heat_model_says_so(engine):
    with engine.connect() as conn, pytest.raises(InvalidInput) as error:
        heat.load_areas(conn)
    assert "population" in str(error.value)


def test_two_forecast_days_at_33_apparent_issue_an_expected_heat_wave_advisory(engine):
    """KMA's 폭염주의보 is issued when 33 °C apparent is *expected* for two days: so is ours, from a forecast."""
    with engine.begin() as conn:
        seed(conn)
        place_store.save_places(conn, [{"kind": "weather_station", "ref": "108", "name_ko": "서울", "name_en": "Seoul",
                                        "area_code": "11110", "lon": 126.9658, "lat": 37.5714}])
        provision_stations(conn)
        temperature = live.station_streams(conn, ("weather_station",), ("air_temperature",))[
            ("weather_station", "108", "air_temperature")]
    day = [27, 27, 26, 26, 26, 27, 28, 30, 31, 32, 33, 34, 34, 34, 34, 34, 33, 32, 31, 30, 29, 28, 28, 27]

    async def run() -> list:
        bus = InProcessBus()
        service = WarningService(engine, bus)
        await service.start()
        stored = live.forecast_heat(engine, temperature, date(2024, 7, 30), day * 2, [60])
        await announce(bus, stored)
        service.stop()
        return stored

    stored = asyncio.run(run())
    assert [round(o["result"], 2) for o in stored] == [34.46, 34.46]  # 34 °C at 60 %: 체감 34.46 °C
    with engine.connect() as conn:
        [warning] = warning_store.list_warnings(conn)
    assert (warning["hazard"], warning["level"], warning["area_key"]) == ("heat_wave", "advisory", "district:11110")
    assert warning["criterion"]["property"] == "forecast_apparent_temperature_max"
