"""The Seoul pack's monitoring network: AirKorea, KMA ASOS/AWS and S-DoT stations as places with a district,
their Things and Datastreams, and the map's station layer over HTTP."""

from __future__ import annotations

import csv
import importlib.util
import shutil
from datetime import UTC, datetime, timedelta

import pytest
from conftest import SHARED_DATA
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from haechi.api.app import create_app
from haechi.cities import BUILTIN
from haechi.cities.load import load_city
from haechi.cities.provision import station_plan
from haechi.core.errors import InvalidInput
from haechi.store import access, open_db
from haechi.store.schema import datastreams, places, things

SEOUL = BUILTIN / "seoul"
AIRKOREA = SHARED_DATA / "air-quality" / "stations-2024" / "stations.csv"
needs_airkorea = pytest.mark.skipif(not AIRKOREA.exists(), reason="the AirKorea list is not shipped: needs shared data")


@pytest.fixture(scope="module")
def seoul(tmp_path_factory):
    engine = open_db(f"sqlite:///{tmp_path_factory.mktemp('network') / 'haechi.db'}")
    report = load_city(engine, "seoul")
    yield engine, report
    engine.dispose()


def _places(engine, kind):
    with engine.connect() as conn:
        return [r._mapping for r in conn.execute(select(places).where(places.c.kind == kind))]


def test_the_official_stations_and_sdot_are_places_of_their_own_kinds(seoul):
    _, report = seoul
    assert report.places["weather_station"] == 29  # ASOS 108 and 28 open AWS; 422 북악산 closed in 2018
    assert report.places["sdot_sensor"] == 851
    if AIRKOREA.exists():
        assert report.places["air_station"] == 40
        assert report.external == [f"air_station: {AIRKOREA.resolve()}"]


@pytest.mark.parametrize("kind", ["air_station", "weather_station", "sdot_sensor"])
def test_every_station_lies_in_a_seoul_district_and_dong(seoul, kind):
    engine, _ = seoul
    rows = _places(engine, kind)
    if kind == "air_station" and not rows:
        pytest.skip("the AirKorea list is not shipped: needs ../shared/data")
    assert rows and all(r["area_code"] and len(r["area_code"]) == 8 and r["area_code"].startswith("11") for r in rows)
    assert len({r["area_code"][:5] for r in rows}) == 25  # every district has stations of each kind


@needs_airkorea
def test_air_stations_are_keyed_by_the_airkorea_station_name(seoul):
    engine, _ = seoul
    stations = {r["ref"]: r for r in _places(engine, "air_station")}
    assert stations["종로구"]["area_code"].startswith("11110")  # Jongno-gu
    networks = [r["attrs"]["network"] for r in stations.values()]
    assert (networks.count("도시대기"), networks.count("도로변대기")) == (25, 15)
    assert stations["강변북로"]["attrs"]["network"] == "도로변대기"


def test_weather_stations_are_keyed_by_the_kma_station_number(seoul):
    engine, _ = seoul
    stations = {r["ref"]: r for r in _places(engine, "weather_station")}
    assert stations["108"]["name_ko"] == "서울" and stations["108"]["area_code"].startswith("11110")
    assert "422" not in stations  # 북악산, closed 2018-12-04
    assert stations["116"]["area_code"].startswith("11620")  # 관악산: a 과천 address, inside Seoul's boundary


def test_each_station_gets_one_datastream_per_property_it_measures(seoul):
    engine, report = seoul
    plan = {kind: {row["property"] for row in rows} for kind, rows in station_plan().items()}
    assert plan["air_station"] == {"pm10", "pm25", "no2", "o3", "co", "so2"}
    assert {"air_temperature", "relative_humidity", "pm10", "pm25"} <= plan["sdot_sensor"]
    query = (select(places.c.kind, func.count(datastreams.c.id))
             .select_from(places.join(things, things.c.place_id == places.c.id)
                          .join(datastreams, datastreams.c.thing_id == things.c.id)).group_by(places.c.kind))
    with engine.connect() as conn:
        per_kind = {kind: n for kind, n in conn.execute(query)}
    for kind in ("weather_station", "sdot_sensor", "air_station"):
        assert per_kind.get(kind, 0) == report.places.get(kind, 0) * len(plan[kind])
    assert report.datastreams_created == sum(per_kind.values())
    assert load_city(engine, "seoul").datastreams_created == 0  # a second load adds nothing


def test_shipped_station_files_are_what_the_derivation_gives(tmp_path):
    if not (SHARED_DATA / "weather" / "stations").exists():
        pytest.skip("needs ../shared/data")
    spec = importlib.util.spec_from_file_location("derive_stations", SEOUL / "derive_stations.py")
    derive = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(derive)
    for name, columns, rows in (("weather_stations.csv", derive.WEATHER_COLUMNS, derive.weather_rows(SHARED_DATA)),
                                ("sdot_sensors.csv", derive.SDOT_COLUMNS, derive.sdot_rows(SHARED_DATA))):
        derive.write(tmp_path / name, columns, rows)
        assert (tmp_path / name).read_text(encoding="utf-8") == (SEOUL / name).read_text(encoding="utf-8")


def test_a_pack_without_the_unshipped_list_loads_and_says_what_is_missing(tmp_path, sqlite_engine):
    pack = tmp_path / "seoul"
    shutil.copytree(SEOUL, pack)  # ../../../../shared/data is not beside this copy
    report = load_city(sqlite_engine, str(pack))
    assert "air_station" not in report.places and report.places["sdot_sensor"] == 851
    assert len(report.missing) == 1 and report.missing[0].startswith("air_station: none of air_stations.csv")


def test_a_place_file_needs_either_file_or_search(tmp_path, sqlite_engine):
    pack = tmp_path / "seoul"
    shutil.copytree(SEOUL, pack)
    manifest = pack / "pack.toml"
    manifest.write_text(manifest.read_text(encoding="utf-8").replace(
        'file = "sdot_sensors.csv"', 'file = "sdot_sensors.csv"\nsearch = ["elsewhere.csv"]'), encoding="utf-8")
    with pytest.raises(InvalidInput, match="either file or search"):
        load_city(sqlite_engine, str(pack))


# ── the map's station layer ─────────────────────────────────────────────────────────────


def test_the_station_layer_is_one_cacheable_answer_with_the_newest_readings(seoul):
    engine, report = seoul
    with engine.begin() as conn:
        _, token = access.create_token(conn, "network gateway", "device")
    with TestClient(create_app(engine)) as client:
        first = client.get("/api/v1/stations", params={"kind": ["weather_station", "sdot_sensor"]})
        assert first.status_code == 200
        body = first.json()
        assert body["counts"] == {"weather_station": 29, "sdot_sensor": 851}
        assert len(body["stations"]) == 880 and all(s["area_code"] for s in body["stations"])
        assert {"pm10", "air_temperature"} <= set(body["properties"])
        assert body["sources"]["sdot_sensor"][0].startswith("서울특별시 스마트서울 도시데이터 센서 (S-DoT)")
        assert "source" not in body["stations"][0]  # credited once per kind
        assert first.headers["cache-control"].startswith("public")
        again = client.get("/api/v1/stations", params={"kind": ["weather_station", "sdot_sensor"]},
                           headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code == 304

        seoul_108 = next(s for s in body["stations"] if s["ref"] == "108")
        assert seoul_108["latest"] == {} and set(seoul_108["streams"]) == {"air_temperature", "relative_humidity",
                                                                             "rainfall"}
        when = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
        posted = client.post("/api/v1/observations", headers={"Authorization": f"Bearer {token}"}, json=[
            {"datastream_id": seoul_108["streams"]["air_temperature"], "result": 31.5,
             "phenomenon_time": when.isoformat()}])
        assert posted.status_code == 200 and posted.json()["stored"] == 1
        weather = client.get("/api/v1/stations", params={"kind": "weather_station"}).json()
        latest = next(s for s in weather["stations"] if s["ref"] == "108")["latest"]
        assert latest["air_temperature"]["result"] == 31.5 and latest["air_temperature"]["quality"] == "good"
        assert client.get("/api/v1/stations", params={"kind": "no_such_kind"}).status_code == 422
        everything = client.get("/api/v1/stations").json()["counts"]
        assert everything["river_gauge"] == report.places["river_gauge"]


def test_the_sdot_layer_file_keeps_the_published_serials():
    with open(SEOUL / "sdot_sensors.csv", encoding="utf-8") as f:
        serials = [r["ref"] for r in csv.DictReader(f)]
    assert len(serials) == len(set(serials)) == 851 and all(s.startswith("V02Q") for s in serials)
