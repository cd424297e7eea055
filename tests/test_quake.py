"""Earthquake damage: BA08 ground motion and Hazus fragility against hand-computed values,
Korea's seismic-code eras, bad scenarios, and a scenario over a small seeded city (SQLite and PostgreSQL).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from haechi.core.errors import InvalidInput
from haechi.predict import quake
from haechi.simulation import runs
from haechi.simulation.registry import no_progress
from haechi.store import areas, places
from haechi.store.schema import dead_letters


def phi(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def scenario(**kw) -> quake.QuakeScenario:
    return quake.QuakeScenario(**({"lon": 127.0, "lat": 37.55, "magnitude": 6.0, "depth_km": 10.0} | kw))


# ── ground motion: Boore & Atkinson (2008), Tables 6–8 ─────────────────────────────────


def test_pga_on_rock_matches_the_ba08_equation_by_hand():
    # M 6.5 strike-slip, Rjb 10 km, Vs30 760 (no site term): e2, e5, e6, Mh, c1, c2, c3, h of Table 6/7.
    m, rjb = 6.5, 10.0
    r = math.sqrt(rjb**2 + 1.35**2)
    ln_y = (-0.50350 + 0.28805 * (m - 6.75) - 0.10164 * (m - 6.75) ** 2
            + (-0.66050 + 0.11970 * (m - 4.5)) * math.log(r) - 0.01151 * (r - 1.0))
    got = quake.ground_motion("pga", m, np.array([rjb]), 760.0, "strike_slip")[0]
    assert got == pytest.approx(math.exp(ln_y), rel=1e-9)
    assert 0.15 < got < 0.25  # BA08 Fig. 9 reads ~0.2 g here


def test_above_the_hinge_magnitude_scaling_uses_e7():
    # M 7.0 > Mh 6.75 and e7 = 0 for PGA: the magnitude term is the mechanism constant alone.
    m, rjb = 7.0, 20.0
    r = math.sqrt(rjb**2 + 1.35**2)
    ln_y = -0.53804 + (-0.66050 + 0.11970 * (m - 4.5)) * math.log(r) - 0.01151 * (r - 1.0)
    assert quake.ground_motion("pga", m, np.array([rjb]))[0] == pytest.approx(math.exp(ln_y), rel=1e-9)


def test_soft_soil_amplifies_weak_motion_by_the_linear_and_low_pga_terms():
    # Far away pga4nl < a1 = 0.03 g, so F_NL = b_nl ln(0.06/0.1) with b_nl = b2 at Vs30 = 300 (eq. 13c).
    rock = quake.ground_motion("pga", 5.5, np.array([120.0]), 760.0)[0]
    soft = quake.ground_motion("pga", 5.5, np.array([120.0]), 300.0)[0]
    assert rock < 0.03
    expected = math.exp(-0.36 * math.log(300 / 760) + (-0.14) * math.log(0.06 / 0.1))
    assert soft / rock == pytest.approx(expected, rel=1e-9)


def test_shaking_falls_with_distance_and_rises_with_magnitude():
    d = np.array([0.0, 5.0, 20.0, 80.0])
    pga = quake.ground_motion("pga", 6.0, d)
    assert np.all(np.diff(pga) < 0)
    assert np.all(quake.ground_motion("pga", 6.5, d) > pga)


def test_rupture_length_shortens_the_joyner_boore_distance():
    half = 10 ** (-2.44 + 0.59 * 7.0) / 2  # Wells & Coppersmith (1994), all slip types
    got = quake.joyner_boore_km(np.array([10.0, 100.0]), 7.0)
    assert got[0] == 0.0
    assert got[1] == pytest.approx(100.0 - half)


def test_intensity_follows_worden_2012():
    # 0.1 g = 98.07 cm/s²: log10 = 1.9915 > t1 1.57 → MMI = −1.60 + 3.70 × 1.9915.
    assert quake.mmi(np.array([0.1]))[0] == pytest.approx(-1.60 + 3.70 * math.log10(98.0665), rel=1e-6)


# ── fragility: Hazus equivalent-PGA curves ─────────────────────────────────────────────


def test_exceedance_is_the_lognormal_cdf():
    # C1L low code, moderate: median 0.15 g, β 0.64 → P(≥moderate | 0.3 g) = Φ(ln 2 / 0.64).
    medians = np.array([[0.12, 0.15, 0.27, 0.45]])
    p = quake.exceedance(np.array([0.3]), medians, np.array([0.64]))[0]
    assert p[1] == pytest.approx(phi(math.log(0.3 / 0.15) / 0.64), abs=1e-12)
    assert p[1] == pytest.approx(0.8606, abs=5e-4)
    assert list(p) == sorted(p, reverse=True)


def test_state_probabilities_are_differences_and_sum_to_one():
    exceed = np.array([[0.9, 0.6, 0.2, 0.05]])
    got = quake.state_probabilities(exceed)[0]
    assert got == pytest.approx([0.1, 0.3, 0.4, 0.15, 0.05])
    assert got.sum() == pytest.approx(1.0)


@pytest.mark.parametrize(("year", "floors", "area_m2", "level"), [
    (1985, 10, np.nan, "pre"),  # before the 1988 rules
    (1990, 5, np.nan, "pre"),  # 1988: 6 storeys or more
    (1990, 6, np.nan, "low"),
    (2010, 2, np.nan, "pre"),  # 2005: 3 storeys or 1,000 m²
    (2010, 3, np.nan, "moderate"),
    (2010, 1, 1200.0, "moderate"),
    (2019, 2, np.nan, "moderate"),  # Dec 2017: 2 storeys or 200 m²
    (2019, 1, 250.0, "moderate"),
    (2019, 1, 100.0, "pre"),
    (0, 20, np.nan, "pre"),  # unknown year: pre-code
])
def test_korean_code_eras_map_to_hazus_design_levels(year, floors, area_m2, level):
    got = quake.design_levels(np.array([year]), np.array([floors]), np.array([area_m2]))[0]
    assert quake.model().levels[got] == level


def test_building_classes_pick_height_and_fall_back_for_masonry():
    frag = quake.model().fragility
    family = np.array([frag.families.index(f) for f in ("C2", "C2", "URM", "W1")])
    b = quake.Buildings(np.zeros(4), np.zeros(4), family, np.array([2, 15, 2, 1]), np.array([2020, 2020, 2020, 2020]),
                        np.full(4, np.nan), np.zeros(4, dtype=np.int64))
    names = [frag.names[i] for i in quake.building_classes(b)]
    # URM has no 'moderate' class in Hazus: the best it has (low) is used.
    assert names == ["C2L/moderate", "C2H/moderate", "URML/low", "W1/pre"]


def test_register_structure_names_map_to_families():
    codes, unknown = quake.family_codes(["철근콘크리트구조", "조적구조", "C2", "초가"])
    families = quake.model().fragility.families
    assert [families[c] if c >= 0 else None for c in codes] == ["C1", "URM", "C2", None]
    assert list(unknown) == [False, False, False, True]


def test_vectorised_damage_equals_a_record_by_record_computation():
    rng = np.random.default_rng(1)
    n = 200
    frag = quake.model().fragility
    b = quake.Buildings(
        lon=127.0 + rng.uniform(-0.1, 0.1, n), lat=37.55 + rng.uniform(-0.1, 0.1, n),
        family=rng.integers(0, len(frag.families), n), floors=rng.integers(1, 30, n),
        year=rng.integers(1970, 2024, n), floor_area_m2=rng.uniform(50, 5000, n), area=np.zeros(n, dtype=np.int64))
    s = scenario(magnitude=6.3)
    pga, probs = quake.building_damage(b, s, chunk=64)
    for i in range(0, n, 37):
        one = quake.Buildings(*(np.atleast_1d(getattr(b, f)[i]) for f in quake.Buildings.__dataclass_fields__))
        cls = quake.building_classes(one)[0]
        rjb = quake.joyner_boore_km(quake.distance_km(s.lon, s.lat, one.lon, one.lat), s.magnitude)
        pga_i = quake.ground_motion("pga", s.magnitude, rjb)[0]
        exceed = [phi(math.log(pga_i / frag.medians[cls, k]) / frag.betas[cls]) for k in range(4)]
        assert pga[i] == pytest.approx(pga_i)
        assert probs[i] == pytest.approx([1 - exceed[0], exceed[0] - exceed[1], exceed[1] - exceed[2],
                                          exceed[2] - exceed[3], exceed[3]], abs=1e-12)


# ── bad scenarios ───────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(("field", "value", "words"), [
    ("magnitude", 9.1, "outside the ground-motion model's range"),
    ("magnitude", 3.0, "outside the ground-motion model's range"),
    ("depth_km", 0.0, "shallow crustal"),
    ("depth_km", 120.0, "shallow crustal"),
    ("vs30", 50.0, "site range"),
])
def test_out_of_range_scenarios_are_refused_naming_the_field(field, value, words):
    with pytest.raises(ValidationError) as caught:
        scenario(**{field: value})
    error = caught.value.errors()[0]
    assert error["loc"] == (field,)
    assert words in error["msg"]


def test_an_epicentre_far_outside_the_city_is_refused():
    with pytest.raises(InvalidInput) as caught:
        quake.check_epicentre(scenario(lon=129.37, lat=36.02), (126.98, 37.57))  # Pohang, ~280 km
    assert caught.value.field == "lon"
    assert "km from the city centre" in caught.value.detail


# ── a scenario over a seeded city ───────────────────────────────────────────────────────


def square(w, s, e, n):
    return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}


def area(code, level, parent, name, box):
    w, s, e, n = box
    return {"code": code, "level": level, "parent_code": parent, "name_ko": name, "geometry": square(*box),
            "min_lon": w, "min_lat": s, "max_lon": e, "max_lat": n, "area_km2": 1.0}


AREAS = [
    area("11", "city", None, "서울특별시", (126.9, 37.5, 127.1, 37.6)),
    area("11110", "district", "11", "종로구", (126.9, 37.5, 127.1, 37.6)),
    area("11110101", "dong", "11110", "가동", (126.9, 37.5, 127.0, 37.6)),
    area("11110102", "dong", "11110", "나동", (127.0, 37.5, 127.1, 37.6)),
]


def building(ref, lon, lat, structure, floors, year, code, households=None):
    return {"kind": "facility", "ref": ref, "name_ko": f"건물 {ref}", "area_code": code, "lon": lon, "lat": lat,
            "facility_type": "building", "structure_type": structure, "floors": floors, "completion_year": year,
            "attrs": {"households": households} if households else None}


PLACES = [
    building("b1", 126.95, 37.55, "조적구조", 2, 1980, "11110101", households=2),
    building("b2", 126.96, 37.56, "철근콘크리트구조", 12, 2012, "11110101", households=40),
    building("b3", 127.05, 37.55, "철근콘크리트구조", 4, 1995, "11110102"),
    building("b4", 127.06, 37.56, "초가", 1, 1970, "11110102"),  # unknown structure: left out, counted
    {"kind": "facility", "ref": "br1", "name_ko": "가교", "area_code": "11110101", "lon": 126.97, "lat": 37.52,
     "facility_type": "bridge", "structure_type": "PSC", "completion_year": 1985, "length_m": 800.0},
    {"kind": "hospital", "ref": "h-near", "name_ko": "가까운 병원", "area_code": "11110101",
     "lon": 126.951, "lat": 37.551},
    {"kind": "hospital", "ref": "h-far", "name_ko": "먼 병원", "area_code": "11110102", "lon": 127.09, "lat": 37.59},
    {"kind": "shelter", "ref": "s-west", "name_ko": "서쪽 운동장", "area_code": "11110101", "lon": 126.94, "lat": 37.55,
     "shelter_kind": "earthquake_outdoor", "capacity": 1},
    {"kind": "shelter", "ref": "s-east", "name_ko": "동쪽 공원", "area_code": "11110102", "lon": 127.08, "lat": 37.55,
     "shelter_kind": "earthquake_outdoor", "capacity": 500},
    {"kind": "shelter", "ref": "s-cool", "name_ko": "무더위쉼터", "area_code": "11110101", "lon": 126.95, "lat": 37.55,
     "shelter_kind": "cooling", "capacity": 50},  # not an earthquake shelter
]
STATISTICS = [{"area_code": "11110", "indicator": k, "year": 2024, "value": v, "source": "test"}
              for k, v in (("population", 150_000), ("households", 75_000))]


@pytest.fixture
def city(engine):
    with engine.begin() as conn:
        areas.save_areas(conn, AREAS)
        areas.save_statistics(conn, STATISTICS)
        places.save_places(conn, PLACES)
    return engine


def test_a_scenario_gives_damage_per_dong_and_a_ranked_inspection_list(city):
    s = scenario(lon=126.95, lat=37.55, magnitude=6.0, depth_km=8.0)
    quake.check(city, s)
    result = quake.run(city, s, no_progress)
    rows = {a["code"]: a for a in result["areas"]}
    assert set(rows) == {"11110101", "11110102"}
    # Expected counts per dong sum to the buildings analysed there (b4 has no known structure).
    for code, n in (("11110101", 2), ("11110102", 1)):
        total = sum(rows[code][f"expected_{k}"] for k in quake.STATES)
        assert rows[code]["buildings"] == n
        assert total <= n
    assert rows["11110101"]["pga_g"] > rows["11110102"]["pga_g"]  # the epicentre lies in 가동
    # The old masonry house in 가동 dominates the damage there.
    b1 = quake.exceedance(np.array([rows["11110101"]["pga_g"]]),
                          quake.model().fragility.medians[[quake.model().fragility.names.index("URML/pre")]],
                          0.64)[0]
    assert rows["11110101"]["expected_complete"] >= round(b1[3], 2) - 0.01
    summary = result["summary"]
    assert summary["buildings"] == 3
    assert any("unknown structure" in n for n in summary["notes"])
    ranked = result["inspection"]
    names = [r["name_ko"] for r in ranked]
    assert names.index("가까운 병원") < names.index("먼 병원")
    assert {"가교", "건물 b1"} <= set(names)  # the 1985 bridge and the 1980 (aging) building are listed
    assert "건물 b2" not in names  # a 2012 building is counted per dong, not listed
    assert [r["priority"] for r in ranked] == sorted((r["priority"] for r in ranked), reverse=True)
    bridge = next(r for r in ranked if r["name_ko"] == "가교")
    closed = [r["name_ko"] for r in result["closed_roads"]]
    assert closed == (["가교"] if bridge["p_moderate_or_worse"] >= 0.5 else [])
    assert summary["closed_roads"] == len(closed)
    assert result["features"]["type"] == "FeatureCollection"
    assert len(result["features"]["features"]) == 2


def test_refused_scenarios_are_kept_as_dead_letters(city):
    with pytest.raises(InvalidInput) as caught:
        runs.accept(city, "quake", {"lon": 127.0, "lat": 37.55, "magnitude": 8.6, "depth_km": 10})
    assert caught.value.field == "params.magnitude"
    with pytest.raises(InvalidInput) as caught:
        runs.accept(city, "quake", {"lon": 129.37, "lat": 36.02, "magnitude": 6.0, "depth_km": 10})
    assert caught.value.field == "lon"
    with city.connect() as conn:
        kept = conn.execute(select(dead_letters.c.reason).where(dead_letters.c.source == "simulations")).scalars().all()
        assert len(kept) == 2
        assert "magnitude" in kept[0] and "km from the city centre" in kept[1]
        assert conn.execute(select(func.count()).select_from(dead_letters)).scalar() == 2


def test_displaced_people_go_to_the_nearest_earthquake_shelter(city):
    s = scenario(lon=126.95, lat=37.55, magnitude=6.5, depth_km=8.0)
    result = quake.run(city, s, no_progress)
    frag = quake.model().fragility
    with city.connect() as conn:
        rows = {r["name_ko"]: r for r in quake._facilities(conn)}
    expected = 0.0
    for name, households, cls in (("건물 b1", 2, "URML/pre"), ("건물 b2", 40, "C1H/moderate")):
        b = rows[name]
        rjb = quake.joyner_boore_km(quake.distance_km(s.lon, s.lat, np.array([b["lon"]]), np.array([b["lat"]])), 6.5)
        pga = quake.ground_motion("pga", 6.5, rjb)
        p = quake.state_probabilities(quake.exceedance(pga, frag.medians[[frag.names.index(cls)]], 0.64))[0]
        expected += households * (0.9 * p[3] + 1.0 * p[4]) * (150_000 / 75_000)  # Hazus weights × persons/household
    assert result["summary"]["displaced_people"] == pytest.approx(expected, abs=0.1)
    by_name = {r["name_ko"]: r for r in result["shelters"]}
    assert set(by_name) == {"서쪽 운동장", "동쪽 공원"}  # the cooling shelter takes no one
    assert by_name["서쪽 운동장"]["demand_people"] == pytest.approx(expected, abs=0.1)
    assert by_name["서쪽 운동장"]["over_capacity"] is bool(expected > 1)
    assert by_name["동쪽 공원"]["demand_people"] == 0.0
    # Everyone in 종로구 lives where MMI ≥ VI in this scenario (both dongs are strongly shaken).
    assert result["summary"]["population_mmi_6_plus"] == 150_000


def test_bridges_and_tunnels_likely_damaged_are_listed_as_roads_to_close():
    def item(role, p):
        return {"place_id": 1, "role": role, "name_ko": f"{role} {p}", "area_code": "11110", "lon": 127.0,
                "lat": 37.5, "p_moderate_or_worse": p}

    listed = quake.closed_roads([item("bridge", 0.8), item("tunnel", 0.5), item("bridge", 0.49),
                                 item("hospital", 0.99)])
    assert [r["name_ko"] for r in listed] == ["bridge 0.8", "tunnel 0.5"]  # threshold 0.5 in quake.toml
