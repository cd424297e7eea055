"""The Seoul pack's public place data: 119 stations and safety centres, emergency rooms, shelters."""

from __future__ import annotations

import csv
import shutil
from collections import Counter
from pathlib import Path

import pytest

from haechi.cities import BUILTIN
from haechi.cities.load import load_city
from haechi.core.errors import InvalidInput
from haechi.model.geo import haversine_m
from haechi.store import places

SEOUL = BUILTIN / "seoul"
CITY_HALL = (126.9780, 37.5665)
#: Places of the public datasets whose coordinates fall just outside the NGII boundary; the loader
#: must report them (수색119안전센터 sits about 25 m beyond the 은평구 edge in the source copy).
KNOWN_OUTSIDE = {"fire_station 1112107"}


def _rows(name: str) -> list[dict[str, str]]:
    with open(SEOUL / name, encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def seoul(tmp_path_factory):
    from haechi.store import open_db

    engine = open_db(f"sqlite:///{tmp_path_factory.mktemp('seoul-places') / 'haechi.db'}")
    report = load_city(engine, "seoul")
    with engine.connect() as conn:
        loaded = {kind: places.list_places(conn, kind) for kind in ("fire_station", "hospital", "shelter")}
    yield engine, report, loaded
    engine.dispose()


def test_every_row_of_the_place_files_is_loaded(seoul):
    _, report, loaded = seoul
    assert report.places["fire_station"] == len(_rows("fire_stations.csv")) == 144
    assert report.places["hospital"] == len(_rows("hospitals.csv")) == 67
    kinds = Counter(s["shelter_kind"] for s in loaded["shelter"])
    assert kinds == {"earthquake_outdoor": len(_rows("shelters_earthquake_outdoor.csv")),
                     "cooling": len(_rows("shelters_cooling.csv"))}
    assert kinds["earthquake_outdoor"] == 1585  # 시설번호 1 … 1585, none missing


def test_fire_service_units_by_type_cover_every_district(seoul):
    _, _, loaded = seoul
    types = Counter(p["attrs"]["station_type"] for p in loaded["fire_station"])
    assert types == {"headquarters": 1, "fire_station": 25, "safety_center": 117, "rescue_unit": 1}
    districts = {p["area_code"][:5] for p in loaded["fire_station"] if p["area_code"]}
    assert len(districts) == 25


def test_known_rows_keep_their_published_values(seoul):
    _, _, loaded = seoul
    by_ref = {kind: {p["ref"]: p for p in rows} for kind, rows in loaded.items()}
    sejongno = by_ref["fire_station"]["1103102"]
    assert (sejongno["name_ko"], sejongno["lon"], sejongno["lat"]) == ("세종로119안전센터", 126.9767474, 37.5819579)
    assert sejongno["area_code"].startswith("11110")  # 종로구
    snuh = by_ref["hospital"]["A1100017"]
    assert (snuh["name_ko"], snuh["emergency_level"], snuh["area_code"][:5]) == ("서울대학교병원", "regional", "11110")
    olympic = by_ref["shelter"]["eqo-221"]
    assert (olympic["name_ko"], olympic["floor_area_m2"], olympic["area_code"][:5]) == ("올림픽공원", 37270.0, "11710")
    assert olympic["capacity"] is None  # the dataset gives an area, never a head count
    gungdong = by_ref["shelter"]["cool-1153079000-궁동종합사회복지관"]
    assert (gungdong["capacity"], gungdong["floor_area_m2"], gungdong["area_code"][:5]) == (500, 2000.0, "11530")
    assert gungdong["attrs"]["admin_dong_code"] == "1153079000"  # a code stays text


def test_every_place_lies_in_seoul_or_is_reported(seoul):
    _, report, loaded = seoul
    new_kinds = {"fire_station", "hospital", "shelter"}
    reported = {o for o in report.outside if o.split()[0] in new_kinds}
    assert reported == KNOWN_OUTSIDE
    for rows in loaded.values():
        for p in rows:
            assert p["area_code"] or f"{p['kind']} {p['ref']}" in reported, p["ref"]


def test_a_point_in_a_sliver_between_dongs_gets_the_nearest_dong_of_its_district():
    """길음동삼부(아)경로당 lies inside 성북구 but in a 3.5 m gap between NGII dong polygons."""
    from haechi.cities import resolve
    from haechi.cities.pack import AreaLocator, boundary_rows, read_manifest

    folder = resolve("seoul")
    locate = AreaLocator(boundary_rows(folder, read_manifest(folder)))
    assert locate.code_at(127.0230850, 37.6024250) == "11290134"  # 길음동, 성북구
    assert locate.code_at(126.9780, 37.5665) == "11140103"  # City Hall, plainly inside 태평로1가
    assert locate.code_at(126.8990108, 37.5898743) is None  # 25 m outside Seoul: not snapped


def test_regional_emergency_centres_match_the_dataset_codes(seoul):
    _, _, loaded = seoul
    regional = {h["name_ko"] for h in loaded["hospital"] if h["emergency_level"] == "regional"}
    published = {r["name_ko"] for r in _rows("hospitals.csv") if r["emergency_class_ko"] == "권역응급의료센터"}
    assert regional == published and len(regional) == 7
    assert "서울대학교병원" in regional and "한양대학교병원" in regional


def test_nearest_fire_unit_to_city_hall_agrees_with_a_brute_force_search(seoul):
    engine, _, _ = seoul
    by_distance = sorted(
        (haversine_m(*CITY_HALL, float(r["lon"]), float(r["lat"])), r["ref"]) for r in _rows("fire_stations.csv"))
    with engine.connect() as conn:
        found = places.nearest(conn, *CITY_HALL, kinds=["fire_station"], within_m=3_000, limit=3)
    assert [p["ref"] for p in found] == [ref for _, ref in by_distance[:3]]
    assert found[0]["distance_m"] == pytest.approx(by_distance[0][0], abs=0.1)


def test_the_new_places_load_the_same_on_postgresql(engine):
    report = load_city(engine, "seoul")
    assert (report.places["fire_station"], report.places["hospital"], report.places["shelter"]) == (144, 67, 1841)
    with engine.connect() as conn:
        [cool] = [s for s in places.list_places(conn, "shelter", area_code="11530")
                  if s["ref"] == "cool-1153079000-궁동종합사회복지관"]
    assert cool["capacity"] == 500 and cool["shelter_kind"] == "cooling"


def _copy_pack(tmp_path: Path) -> Path:
    pack = tmp_path / "pack"
    shutil.copytree(SEOUL, pack)
    return pack


@pytest.mark.parametrize(("file", "column", "bad"), [
    ("hospitals.csv", "emergency_level", "super"),
    ("fire_stations.csv", "station_type", "fire_engine"),
])
def test_a_place_of_unknown_type_is_refused_with_its_field(tmp_path, sqlite_engine, file, column, bad):
    pack = _copy_pack(tmp_path)
    rows = _rows(file)
    rows[0][column] = bad
    with open(pack / file, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(InvalidInput, match=f"{file} line 2: {column} must be one of"):
        load_city(sqlite_engine, str(pack))
