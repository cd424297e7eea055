"""Targeting on the Seoul pack: a city-wide warning reaches every district of the city, a district
warning its own district only."""

from __future__ import annotations

import pytest

from haechi.cities.load import load_city
from haechi.cities.targeting import area_facts
from haechi.store import areas
from haechi.warnings.criteria import load_criteria
from haechi.warnings.engine import StreamInfo


@pytest.fixture
def seoul(engine):
    load_city(engine, "seoul")
    return engine


def test_a_city_wide_warning_targets_every_district_of_the_city(seoul):
    with seoul.connect() as conn:
        facts = area_facts(conn, "city:11", "fine_dust")
        districts = areas.list_areas(conn, level="district", parent="11")
        dongs = areas.list_areas(conn, level="dong")
        population = sum(areas.statistics(conn, d["code"])["population"]["value"] for d in districts)
    assert len(districts) == 25
    assert facts.affected["districts"] == [d["code"] for d in districts]
    assert set(facts.geocodes) == {a["code"].ljust(10, "0") for a in districts + dongs}
    assert facts.affected["dongs"] == len(dongs) and facts.affected["population"] == round(population)
    assert (facts.name_ko, facts.name_en, facts.area_code) == ("서울특별시", "Seoul", "11")
    assert facts.polygons  # the city's outline, for CAP


def test_a_district_warning_still_targets_its_own_district_and_dongs(seoul):
    with seoul.connect() as conn:
        facts = area_facts(conn, "district:11140", "fine_dust")
        dongs = areas.list_areas(conn, level="dong", parent="11140")
    assert facts.affected["districts"] == ["11140"] and facts.area_code == "11140"
    assert set(facts.geocodes) == {"1114000000"} | {d["code"].ljust(10, "0") for d in dongs}


def test_a_stream_reporting_for_the_city_warns_the_city():
    city_mean = StreamInfo(1, "pm10", area_code="11")
    station = StreamInfo(2, "pm10", area_code="11140")
    [advisory] = [c for c in load_criteria() if (c.hazard, c.level, c.property) == ("fine_dust", "advisory", "pm10")]
    assert city_mean.area(advisory) == "city:11"
    assert station.area(advisory) == "district:11140"
