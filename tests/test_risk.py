"""Regional risk index: a small hand-computed example, honest handling of missing data, the
sensitivity analysis, and the DB/API/CLI outputs (SQLite and PostgreSQL)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from test_api_support import assert_problem, square
from typer.testing import CliRunner

from haechi import risk
from haechi.api import create_app
from haechi.cli import app as cli
from haechi.core.errors import InvalidInput
from haechi.core.settings import Settings
from haechi.risk.index import compute, load_method, method_from, sensitivity
from haechi.store import access, areas, places


def small_method(**method) -> risk.index.Method:
    """Four dimensions, five indicators; v1 counts twice within vulnerability; c1 is a capacity."""
    return method_from({
        "method": {"normalised_range": [1.0, 10.0], "aggregation": "geometric"} | method,
        "dimensions": {d: {"weight": 1.0} for d in ("hazard", "exposure", "vulnerability", "lack_of_coping")},
        "indicators": {
            "h1": {"dimension": "hazard", "source": {"kind": "statistic", "indicator": "h1"}},
            "e1": {"dimension": "exposure", "source": {"kind": "density", "numerator": "population"}},
            "v1": {"dimension": "vulnerability", "weight": 2.0,
                   "source": {"kind": "ratio", "numerator": "age_65_plus", "denominator": "population"}},
            "v2": {"dimension": "vulnerability",
                   "source": {"kind": "ratio", "numerator": "foreigners", "denominator": "population"}},
            "c1": {"dimension": "lack_of_coping", "direction": -1,
                   "source": {"kind": "places_per_population", "places": ["shelter"], "per": 10000}},
        },
        "sensitivity": {"samples": 200, "weight_spread": 0.5, "seed": 1, "top_n": 1},
    })


# Columns h1, e1, v1, v2, c1 for areas A, B, C.
VALUES = np.array([
    [0.0, 100.0, 0.1, 0.3, 2.0],
    [5.0, 200.0, 0.2, 0.1, 1.0],
    [10.0, 300.0, 0.3, 0.2, 0.0],
])


def test_the_index_matches_a_hand_computed_example():
    # min-max onto 1..10: h, e, v1 → 1, 5.5, 10; v2 → 10, 1, 5.5; c1 reversed → 1, 5.5, 10.
    # V = (2·v1 + v2) / 3 → 4, 4, 8.5; risk = (H·E·V·L)^(1/4).
    result = compute(small_method(), VALUES)
    assert result.scores[:, 2] == pytest.approx([4.0, 4.0, 8.5])
    assert result.scores[:, 3] == pytest.approx([1.0, 5.5, 10.0])
    expected = [4 ** 0.25, (5.5 * 5.5 * 4 * 5.5) ** 0.25, (10 * 10 * 8.5 * 10) ** 0.25]
    assert result.risk == pytest.approx(expected)
    assert list(result.rank) == [3, 2, 1]


def test_arithmetic_aggregation_is_the_mean_of_the_dimensions():
    result = compute(small_method(aggregation="arithmetic"), VALUES)
    assert result.risk == pytest.approx([(1 + 1 + 4 + 1) / 4, (5.5 * 3 + 4) / 4, (30 + 8.5) / 4])


def test_a_missing_value_is_not_invented_the_area_uses_what_it_has():
    values = VALUES.copy()
    values[1, 3] = np.nan  # B has no v2: its vulnerability is v1 alone (5.5), not a filled-in guess
    result = compute(small_method(), values)
    assert result.scores[1, 2] == pytest.approx(5.5)
    assert result.scores[0, 2] == pytest.approx((2 * 1 + 10) / 3)  # v2 still spans A..C (0.3 → 10, 0.2 → 1)


def test_an_area_without_any_value_in_a_dimension_is_unranked():
    values = VALUES.copy()
    values[0, 0] = np.nan
    result = compute(small_method(), values)
    assert math.isnan(result.risk[0]) and result.rank[0] == 0
    assert list(result.rank[1:]) == [2, 1]


def test_indicators_without_data_or_variation_are_dropped_and_weights_renormalised():
    values = VALUES.copy()
    values[:, 3] = np.nan  # v2 nowhere
    values[:, 1] = 7.0  # e1 the same everywhere: exposure has no usable indicator
    result = compute(small_method(), values)
    assert list(result.usable) == [True, False, True, False, True]
    assert result.dimensions_used == ["hazard", "vulnerability", "lack_of_coping"]
    assert result.risk == pytest.approx([1.0, 5.5, 10.0])  # geometric mean of three equal scores


def test_sensitivity_reports_rank_stability():
    method = small_method()
    result = compute(method, VALUES)
    steady = sensitivity(method, result, spread=0.0)
    assert steady["spearman_rho"]["median"] == pytest.approx(1.0)
    assert steady["top_n_kept_share"] == 1.0
    shaken = sensitivity(method, result, spread=0.9)
    assert -1.0 <= shaken["spearman_rho"]["min"] <= shaken["spearman_rho"]["median"] <= 1.0
    assert set(shaken["leave_one_out"]) == {"v1", "v2"}  # the only dimension with two indicators
    assert shaken["rank_band"]["p05"].shape == (3,)


@pytest.mark.parametrize(("change", "field"), [
    ({"dimension": "nonsense"}, "indicators.v2.dimension"),
    ({"direction": 2}, "indicators.v2.direction"),
    ({"weight": -1}, "indicators.v2.weight"),
    ({"source": {"kind": "guess"}}, "indicators.v2.source.kind"),
])
def test_a_faulty_method_is_refused_naming_the_key(change, field):
    raw = {"dimensions": {"vulnerability": {}},
           "indicators": {"v2": {"dimension": "vulnerability", "source": {"kind": "statistic", "indicator": "x"}}
                          | change}}
    with pytest.raises(InvalidInput) as caught:
        method_from(raw)
    assert caught.value.field == field


def test_the_shipped_method_names_a_source_for_every_indicator():
    method = load_method()
    assert set(method.dimensions) == {"hazard", "exposure", "vulnerability", "lack_of_coping"}
    assert {i.name for i in method.indicators} >= {"flood", "landslide", "earthquake", "heat", "fire", "dust",
                                                  "elderly", "children", "low_income", "foreigners",
                                                  "single_person_households", "aging_buildings", "semi_basements",
                                                  "shelters", "fire_coverage", "hospitals"}
    assert all(i.about for i in method.indicators)


# ── from the DB ─────────────────────────────────────────────────────────────────────────


def area(code, level, parent, name, box):
    w, s, e, n = box
    return {"code": code, "level": level, "parent_code": parent, "name_ko": name, "geometry": square(*box),
            "min_lon": w, "min_lat": s, "max_lon": e, "max_lat": n, "area_km2": 10.0}


BOXES = {"11110": (126.95, 37.57, 127.02, 37.63), "11680": (127.02, 37.46, 127.10, 37.53),
         "11710": (127.10, 37.46, 127.18, 37.53)}
STATS = {  # population, age_65_plus, foreigners, h1
    "11110": (150_000, 30_000, 10_000, 3.0),
    "11680": (540_000, 80_000, 5_000, 1.0),
    "11710": (650_000, 90_000, 6_000, 2.0),
}


@pytest.fixture
def city(engine):
    rows = [area("11", "city", None, "서울특별시", (126.9, 37.4, 127.2, 37.7))]
    rows += [area(c, "district", "11", f"구{c}", b) for c, b in BOXES.items()]
    rows += [area("11680101", "dong", "11680", "역삼동", (127.03, 37.49, 127.05, 37.51)),
             area("11710101", "dong", "11710", "잠실동", (127.10, 37.50, 127.12, 37.52))]
    stats = [{"area_code": c, "indicator": k, "year": 2024, "value": v, "source": "test"}
             for c, vals in STATS.items() for k, v in zip(("population", "age_65_plus", "foreigners", "h1"), vals,
                                                          strict=True)]
    stats.append({"area_code": "11710101", "indicator": "h1", "year": 2024, "value": 9.0, "source": "test"})
    shelters = [{"kind": "shelter", "ref": f"s{i}", "name_ko": f"대피소 {i}", "lon": lon, "lat": lat,
                 "shelter_kind": "civil_defence"} for i, (lon, lat) in
                enumerate([(126.98, 37.60), (126.99, 37.60), (127.04, 37.50), (127.11, 37.51)])]
    with engine.begin() as conn:
        areas.save_areas(conn, rows)
        areas.save_statistics(conn, stats)
        places.save_places(conn, shelters)
    return engine


def test_district_ranking_from_statistics_and_places(city):
    with city.connect() as conn:
        table = risk.assess(conn, "district", method=small_method())
    by_code = {r["code"]: r for r in table["areas"]}
    # two shelters in Jongno
    assert by_code["11110"]["indicators"]["c1"] == pytest.approx(2 / 150_000 * 10_000, rel=1e-5)
    assert by_code["11680"]["indicators"]["v1"] == pytest.approx(80_000 / 540_000, rel=1e-5)
    assert [r["rank"] for r in table["areas"]] == [1, 2, 3]
    assert table["missing"] == []
    assert table["sensitivity"]["samples"] == 200


def test_dongs_take_intensive_values_from_their_district_and_say_so(city):
    with city.connect() as conn:
        table = risk.assess(conn, "dong", method=small_method(dong_fallback="district"))
    by_code = {r["code"]: r for r in table["areas"]}
    jamsil = by_code["11710101"]
    assert jamsil["indicators"]["h1"] == 9.0  # its own statistic wins
    assert jamsil["indicators"]["v1"] == pytest.approx(90_000 / 650_000, rel=1e-5)
    assert set(jamsil["from_district"]) == {"e1", "v1", "v2"}
    assert "h1" in by_code["11680101"]["from_district"]
    assert "c1" not in jamsil["from_district"]  # counts are never apportioned: shelters are counted per dong
    with city.connect() as conn:
        honest = risk.assess(conn, "dong", method=small_method(dong_fallback=None), with_sensitivity=False)
    reasons = {m["indicator"]: m["reason"] for m in honest["missing"]}
    assert set(reasons) == {"h1", "e1", "v1", "v2", "c1"}  # without the fallback dongs have almost nothing
    assert "statistic 'population' is not loaded" in reasons["e1"]
    assert "only one area" in reasons["h1"]


def test_the_shipped_method_reports_what_the_city_lacks(city):
    with city.connect() as conn:
        table = risk.assess(conn, "district", with_sensitivity=False)
    missing = {m["indicator"]: m["reason"] for m in table["missing"]}
    assert "no finished flood simulation" in missing["flood"]
    assert "heatwave_days" in missing["heat"]
    assert "fire_coverage" in missing  # no fire stations loaded
    assert "shelters" not in missing


@pytest.fixture
def client(city):
    with city.begin() as conn:
        _, token = access.create_token(conn, "citizen", "citizen")
    return TestClient(create_app(city, Settings()), headers={"Authorization": f"Bearer {token}"})


def test_the_api_serves_a_choropleth_layer_and_the_ranked_table(client):
    layer = client.get("/api/v1/risk", params={"level": "district"})
    assert layer.status_code == 200, layer.text
    assert layer.headers["content-type"].startswith("application/geo+json")
    features = layer.json()["features"]
    assert {f["properties"]["code"] for f in features} == set(BOXES)
    assert all(f["geometry"]["type"] == "Polygon" and f["properties"]["rank"] for f in features)
    ranked = client.get("/api/v1/risk/rank", params={"level": "district", "sensitivity": "false"}).json()
    assert [r["rank"] for r in ranked["areas"]] == [1, 2, 3]
    assert ranked["sensitivity"] is None
    assert_problem(client.get("/api/v1/risk", params={"level": "street"}), 422, "query.level")
    assert_problem(client.get("/api/v1/risk/rank", params={"quake": 99}), 422, "quake")


def test_the_cli_ranks_and_writes_a_report(city, db_url, tmp_path: Path):
    runner = CliRunner()
    ranked = runner.invoke(cli, ["risk", "rank", "--level", "district", "--database-url", db_url])
    assert ranked.exit_code == 0, ranked.output
    assert "missing" in ranked.output and "Spearman" in ranked.output
    out = tmp_path / "report"
    written = runner.invoke(cli, ["risk", "report", "--out", str(out), "--level", "district", "--database-url", db_url])
    assert written.exit_code == 0, written.output
    assert {p.name for p in out.iterdir()} == {"index.html", "map.png", "top.png", "sensitivity.png"}
    assert (out / "map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "구11110" in page and "Missing indicators" in page
