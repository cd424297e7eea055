"""Urban flooding: SCS curve-number runoff against hand computation, surcharge, areas from the DB, SWMM."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from haechi.core.errors import InvalidInput
from haechi.predict import flood, swmm_run
from haechi.predict.runoff import composite_cn, retention_mm, rolling_sum, runoff_mm, step_runoff_mm
from haechi.simulation.registry import kinds
from haechi.store import areas as area_store
from haechi.store import places as place_store
from haechi.store.schema import observations, warnings


def square(lon: float, lat: float, d: float = 0.01) -> dict:
    return {"type": "Polygon",
            "coordinates": [[[lon, lat], [lon + d, lat], [lon + d, lat + d], [lon, lat + d], [lon, lat]]]}


# ── the published method, by hand ──

def test_curve_number_runoff_matches_the_tr55_equation_worked_by_hand():
    # CN 85: S = 25400/85 − 254 = 44.824 mm, Ia = 8.965 mm; P = 100 mm → Q = 91.035² / 135.859 = 61.00 mm
    assert retention_mm(85) == pytest.approx(44.8235, abs=1e-4)
    assert runoff_mm(100, 85) == pytest.approx(61.00, abs=0.01)
    # CN 70: S = 108.857 mm; P = 50 mm → Q = (50 − 21.771)² / (50 + 87.086) = 5.81 mm
    assert runoff_mm(50, 70) == pytest.approx(5.813, abs=0.001)
    assert runoff_mm(8.9, 85) == 0.0  # rain below the initial abstraction makes no runoff
    assert runoff_mm(37.5, 100) == pytest.approx(37.5)  # water (S = 0): all rain runs off


def test_composite_curve_number_is_area_weighted():
    assert composite_cn(np.array([[1.0, 1.0]]), np.array([98, 61]))[0] == pytest.approx(79.5)
    with pytest.raises(InvalidInput) as error:
        composite_cn(np.array([[0.0, 0.0]]), np.array([98, 61]))
    assert error.value.field == "land_use"


def test_step_runoff_adds_up_to_the_storm_runoff_and_rolling_sums_trail():
    rain = np.array([10.0, 30.0, 0.0, 60.0])
    steps = step_runoff_mm(rain, np.array([85.0]))[0]  # one area
    assert steps.sum() == pytest.approx(runoff_mm(100, 85))
    assert steps[0] > 0 and steps[2] == pytest.approx(0.0)
    assert rolling_sum(np.array([1.0, 2, 3, 4]), 2).tolist() == [1, 3, 5, 7]


def test_bad_curve_numbers_are_refused():
    with pytest.raises(InvalidInput):
        retention_mm(0)
    with pytest.raises(InvalidInput):
        retention_mm(101)


# ── surcharge of the design drainage ──

def areas_of(n: int, design=100.0) -> flood.Areas:
    cfg = flood.config()
    return flood.Areas(codes=[f"1100000{i}" for i in range(n)], names=[f"동{i}" for i in range(n)], area_km2=np.ones(n),
                       shares=np.tile(cfg.default_shares, (n, 1)), land_use_known=np.zeros(n, bool),
                       design_mm_h=np.full(n, design), semi_basement=np.full(n, np.nan), underpasses=np.full(n, -1))


def test_the_design_storm_exactly_fills_the_drainage_and_more_rain_surcharges_it():
    areas = areas_of(1)
    design = flood.assess(np.array([100.0]), 60, areas)  # 100 mm in one hour: Seoul's 방재성능목표
    assert design["surcharge_ratio"][0] == pytest.approx(1.0)
    assert flood.config().risk_levels[design["risk_level"][0]] == "high"
    light = flood.assess(np.array([20.0 / 6] * 6), 10, areas)  # 20 mm in an hour
    assert light["surcharge_ratio"][0] < 0.8 and light["first_surcharge_min"][0] == -1
    assert flood.config().risk_levels[light["risk_level"][0]] == "none"
    heavy = flood.assess(np.array([5.0] * 6 + [25.0] * 6), 10, areas)  # 30 mm, then 150 mm/h
    assert heavy["surcharge_ratio"][0] > 1.5 and heavy["overflow_m3"][0] > 0
    assert 60 < heavy["first_surcharge_min"][0] < 120  # surcharged within the second hour


def test_a_higher_design_target_lowers_the_surcharge():
    rain = np.array([18.0] * 6)  # 108 mm in one hour
    old, new = flood.assess(rain, 10, areas_of(1, 95.0)), flood.assess(rain, 10, areas_of(1, 110.0))
    assert old["surcharge_ratio"][0] > 1.0 > new["surcharge_ratio"][0]


def test_empty_or_negative_rainfall_and_odd_steps_get_clear_errors():
    with pytest.raises(InvalidInput) as error:
        flood.assess(np.array([]), 10, areas_of(2))
    assert error.value.field == "rainfall_mm" and "empty" in str(error.value)
    with pytest.raises(InvalidInput) as error:
        flood.assess(np.array([1.0, -2.0]), 10, areas_of(2))
    assert error.value.field == "rainfall_mm"
    with pytest.raises(InvalidInput) as error:
        flood.assess(np.array([1.0]), 7, areas_of(2))
    assert error.value.field == "step_minutes"
    with pytest.raises(ValidationError) as bad:
        flood.FloodScenario(rainfall_mm=[])
    assert bad.value.errors()[0]["loc"] == ("rainfall_mm",) and "empty" in bad.value.errors()[0]["msg"]


def test_per_area_rainfall_rows_must_match_the_areas():
    with pytest.raises(InvalidInput) as error:
        flood.assess(np.ones((3, 6)), 10, areas_of(2))
    assert error.value.field == "rainfall_mm"
    result = flood.assess(np.vstack([np.full(6, 1.0), np.full(6, 20.0)]), 10, areas_of(2))
    assert result["surcharge_ratio"][0] < result["surcharge_ratio"][1]


# ── areas from the integrated database ──

def seed(conn) -> None:
    area_store.save_areas(conn, [
        {"code": "11", "level": "city", "name_ko": "서울특별시"},
        {"code": "11680", "level": "district", "parent_code": "11", "name_ko": "강남구"},
        {"code": "11680101", "level": "dong", "parent_code": "11680", "name_ko": "역삼동", "area_km2": 3.4,
         "geometry": square(127.03, 37.49)},
        {"code": "11680110", "level": "dong", "parent_code": "11680", "name_ko": "개포동", "area_km2": 6.0,
         "geometry": square(127.05, 37.48)},
    ])
    area_store.save_land_use(conn, [
        {"area_code": "11680110", "use_class": "forest", "area_km2": 3.0, "source": "test"},
        {"area_code": "11680110", "use_class": "green", "area_km2": 3.0, "source": "test"},
    ])
    area_store.save_statistics(conn, [{"area_code": "11680101", "indicator": flood.SEMI_BASEMENT, "year": 2020,
                                       "value": 1234, "source": "test"}])
    place_store.save_places(conn, [{"kind": "facility", "ref": "u1", "name_ko": "역삼 지하차도",
                                    "area_code": "11680101", "facility_type": "underground"}])


def test_areas_take_land_use_design_targets_and_vulnerable_places_from_the_database(engine):
    with engine.begin() as conn:
        seed(conn)
        areas = flood.load_areas(conn)
    assert areas.codes == ["11680101", "11680110"]
    yeoksam, gaepo = 0, 1
    assert areas.design_mm_h[yeoksam] == 110.0  # 강남역 중점관리지역 (서울시 방재성능목표 2022)
    assert areas.design_mm_h[gaepo] == 100.0
    assert not areas.land_use_known[yeoksam] and areas.land_use_known[gaepo]
    result = flood.assess(np.array([15.0] * 6), 10, areas)
    assert result["cn"][gaepo] == pytest.approx((55 + 61) / 2)  # half woods, half open space, soil group B
    rows = {r["code"]: r for r in flood.risk_rows(areas, result)}
    assert rows["11680101"]["semi_basement_households"] == 1234 and rows["11680101"]["underpasses"] == 1
    assert rows["11680110"]["semi_basement_households"] is None and rows["11680110"]["underpasses"] == 0
    with engine.connect() as conn:
        old = flood.load_areas(conn, design="before_2022")
    assert set(old.design_mm_h) == {95.0}


def test_no_dongs_is_a_clear_error(engine):
    with engine.connect() as conn, pytest.raises(InvalidInput) as error:
        flood.load_areas(conn)
    assert "load a city pack" in str(error.value)


def test_flood_simulation_returns_a_map_layer_and_never_touches_live_state(engine):
    with engine.begin() as conn:
        seed(conn)
    steps = []
    kind = kinds()["flood"]
    hourly = [20, 40, 130, 60, 20, 10]  # mm per hour, like 2022-08-08 in 동작구 (141.5 mm/h peak)
    params = kind.params(rainfall_mm=[h / 6 for h in hourly for _ in range(6)], step_minutes=10, design="before_2022")
    result = kind.run(engine, params, lambda done, total, what: steps.append((done, total, what)))
    assert result["summary"]["areas"] == 2 and steps[-1][0] == steps[-1][1]
    rows = {r["code"]: r for r in result["areas"]}
    assert {r["risk"] for r in rows.values()} <= {"high", "severe"}  # 130 mm/h passes the old 95 mm/h
    # with the same target, paved 역삼동 leaves more water per km² on its surface than wooded 개포동
    assert rows["11680101"]["overflow_m3"] / 3.4 > rows["11680110"]["overflow_m3"] / 6.0
    assert result["summary"]["semi_basement_data"] and result["summary"]["underpass_data"]
    assert result["features"]["type"] == "FeatureCollection"
    json.loads(json.dumps(result))  # stored as a scenario: plain JSON, no numpy types
    assert result["features"]["features"][0]["geometry"]["type"] == "Polygon"
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(observations)).scalar() == 0
        assert conn.execute(select(func.count()).select_from(warnings)).scalar() == 0


# ── SWMM through pyswmm ──

def test_swmm_test_network_floods_its_undersized_pipe_in_a_100_mm_hour_and_not_in_drizzle():
    network = swmm_run.TEST_NETWORK.read_text(encoding="utf-8")
    storm = swmm_run.run(network, [0.0] * 3 + [16.7] * 6 + [0.0] * 3, 10)
    nodes = {n["id"]: n for n in storm["nodes"]}
    assert nodes["J1"]["flooding_m3"] > 100 and nodes["J1"]["flooding_hours"] > 0.2
    assert nodes["J3"]["flooding_m3"] == 0
    assert {s["id"]: s["precipitation_mm"] for s in storm["subcatchments"]} == pytest.approx({"S1": 100.2, "S2": 100.2})
    drizzle = swmm_run.run(network, [2.0] * 12, 10)
    assert all(n["flooding_m3"] == 0 for n in drizzle["nodes"])


def test_swmm_rainfall_is_written_into_the_network_and_bad_input_is_refused():
    text = swmm_run.with_rainfall(swmm_run.TEST_NETWORK.read_text(encoding="utf-8"), [5.0, 0.0], 5)
    assert "RAIN  0:00  60.000" in text and "RAIN  0:05  0.000" in text
    assert "INTENSITY  0:05" in text
    with pytest.raises(InvalidInput) as error:
        swmm_run.with_rainfall(text, [], 10)
    assert error.value.field == "rainfall_mm"
