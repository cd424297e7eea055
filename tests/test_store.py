"""The store suite: the same repository code on SQLite and on PostgreSQL (the `db_url` fixture)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError

from haechi.core.clock import as_utc
from haechi.core.errors import NotFound
from haechi.store import access, areas, deadletters, places, records, sensing
from haechi.store.db import revision_info, upgrade
from haechi.store.schema import api_tokens, metadata

SQUARE = {"type": "Polygon",
          "coordinates": [[[127.0, 37.5], [127.1, 37.5], [127.1, 37.6], [127.0, 37.6], [127.0, 37.5]]]}


def _area(code, level, parent=None, name="구역", geometry=None, bbox=(127.0, 37.5, 127.1, 37.6)):
    return {"code": code, "level": level, "parent_code": parent, "name_ko": name, "name_en": None,
            "area_km2": 1.0, "geometry": geometry, "min_lon": bbox[0], "min_lat": bbox[1],
            "max_lon": bbox[2], "max_lat": bbox[3], "source": "test"}


def _seed_areas(conn):
    areas.save_areas(conn, [
        _area("11680", "district", "11", "강남구", SQUARE),
        _area("11", "city", None, "서울특별시", SQUARE),
    ])


def test_migrations_create_every_table_and_are_idempotent(engine):
    upgrade(engine)  # a second upgrade changes nothing
    current, head = revision_info(engine)
    assert current == head
    assert set(metadata.tables) <= set(inspect(engine).get_table_names())


def test_areas_parents_first_lookup_by_point_and_latest_statistics(engine):
    with engine.begin() as conn:
        _seed_areas(conn)  # child given before parent: save_areas orders them
        areas.save_statistics(conn, [
            {"area_code": "11680", "indicator": "population", "year": 2022, "value": 530_000},
            {"area_code": "11680", "indicator": "population", "year": 2023, "value": 540_000},
            {"area_code": "11680", "indicator": "low_income_recipients", "year": 2021, "value": 9_000,
             "source": "test table"},
        ])
    with engine.connect() as conn:
        assert [a["code"] for a in areas.list_areas(conn, level="district")] == ["11680"]
        assert areas.get_area(conn, "11680")["geometry"]["type"] == "Polygon"
        assert "geometry" not in areas.list_areas(conn)[0]
        assert areas.area_at(conn, 127.05, 37.55)["code"] == "11680"
        assert areas.area_at(conn, 126.5, 37.55) is None
        latest = areas.statistics(conn, "11680")
        assert latest["population"]["value"] == 540_000 and latest["population"]["year"] == 2023
        assert latest["low_income_recipients"] == {"value": 9_000, "year": 2021, "source": "test table"}
        assert areas.statistics(conn, "11680", 2022)["population"]["value"] == 530_000
        with pytest.raises(NotFound):
            areas.get_area(conn, "99999")


def test_places_upsert_keeps_one_row_and_its_detail(engine):
    bridge = {"kind": "facility", "ref": "B-1", "name_ko": "성수대교", "lon": 127.035, "lat": 37.537,
              "facility_type": "bridge", "structure_type": "steel truss", "completion_year": 1979,
              "safety_grade": "C", "attrs": {"facility_type": "bridge", "lanes": 8}}
    with engine.begin() as conn:
        places.save_places(conn, [bridge])
        places.save_places(conn, [{**bridge, "safety_grade": "B"}])  # re-inspection upgrades the grade
    with engine.connect() as conn:
        [row] = places.list_places(conn, "facility")
        assert row["safety_grade"] == "B" and row["completion_year"] == 1979
        assert row["attrs"] == {"lanes": 8}  # facts with their own column are not repeated
        assert places.get_place(conn, row["id"])["structure_type"] == "steel truss"
        with pytest.raises(NotFound):
            places.get_place(conn, row["id"] + 100)


def test_bad_safety_grade_is_refused_by_the_database(engine):
    with pytest.raises(IntegrityError), engine.begin() as conn:
        places.save_places(conn, [{"kind": "facility", "ref": "X", "name_ko": "x", "facility_type": "bridge",
                                   "safety_grade": "F"}])


def test_nearest_places_are_sorted_and_within_the_radius(engine):
    hall = (126.9780, 37.5665)
    rows = [
        {"kind": "shelter", "ref": "near", "name_ko": "가까운 쉼터", "lon": 126.9790, "lat": 37.5665,
         "shelter_kind": "cooling", "capacity": 30},
        {"kind": "shelter", "ref": "mid", "name_ko": "중간 쉼터", "lon": 126.9880, "lat": 37.5665,
         "shelter_kind": "cooling", "capacity": 50},
        {"kind": "hospital", "ref": "far", "name_ko": "먼 병원", "lon": 127.1, "lat": 37.6},
    ]
    with engine.begin() as conn:
        places.save_places(conn, rows)
    with engine.connect() as conn:
        found = places.nearest(conn, *hall, within_m=2_000)
        assert [p["ref"] for p in found] == ["near", "mid"]
        assert 80 < found[0]["distance_m"] < 100  # 0.001° of longitude at 37.57° N ≈ 88 m
        assert places.nearest(conn, *hall, kinds=["hospital"], within_m=2_000) == []
        assert [p["ref"] for p in places.list_places(conn, bbox=(126.97, 37.56, 126.98, 37.57))] == ["near"]


def test_observations_are_stored_once_however_often_they_are_sent(engine):
    with engine.begin() as conn:
        datastream_id = _datastream(conn)
        t0 = datetime(2020, 8, 6, 5, 20, tzinfo=UTC)
        batch = [{"datastream_id": datastream_id, "phenomenon_time": t0 + timedelta(minutes=10 * i),
                  "result": 10.0 + i} for i in range(3)]
        assert sensing.add_observations(conn, batch) == 3
        assert sensing.add_observations(conn, batch) == 0  # a resend is a no-op
    with engine.connect() as conn:
        newest = sensing.observations_of(conn, datastream_id)
        assert [o["result"] for o in newest] == [12.0, 11.0, 10.0]
        assert as_utc(newest[0]["phenomenon_time"]) == t0 + timedelta(minutes=20)
        assert sensing.count_observations(conn) == 3


def test_times_are_stored_in_utc_whatever_zone_they_arrive_in(engine):
    kst = timezone(timedelta(hours=9))
    with engine.begin() as conn:
        stream = _datastream(conn)
        sensing.add_observations(conn, [{"datastream_id": stream, "result": 10.8,
                                         "phenomenon_time": datetime(2020, 8, 6, 14, 20, tzinfo=kst)}])
        sensing.add_observations(conn, [{"datastream_id": stream, "result": 10.8,  # the same instant, in UTC
                                         "phenomenon_time": datetime(2020, 8, 6, 5, 20, tzinfo=UTC)}])
    with engine.connect() as conn:
        [stored] = sensing.observations_of(conn, stream)
    assert stored["phenomenon_time"] == datetime(2020, 8, 6, 5, 20, tzinfo=UTC)
    assert stored["phenomenon_time"].utcoffset() == timedelta(0)


def test_unknown_quality_flag_is_refused(engine):
    with pytest.raises(IntegrityError), engine.begin() as conn:
        sensing.add_observations(conn, [{"datastream_id": _datastream(conn), "result": 1.0,
                                         "phenomenon_time": datetime(2024, 1, 1, tzinfo=UTC),
                                         "result_quality": "great"}])


def _datastream(conn) -> int:
    location = sensing.create_location(conn, {"name": "한강대교", "location": {
        "type": "Point", "coordinates": [126.9567, 37.5144]}})
    thing = sensing.create_thing(conn, {"name": "Hangang Bridge gauge"}, [location])
    sensor = sensing.create_sensor(conn, {"name": "radar level sensor"})
    sensing.save_observed_properties(conn, [{"code": "water_level", "name": "Water level",
                                             "definition": "http://vocabs.example/water_level"}])
    prop = sensing.observed_property_ids(conn)["water_level"]
    return sensing.create_datastream(conn, {
        "name": "Hangang Bridge water level", "thing_id": thing, "sensor_id": sensor,
        "observed_property_id": prop, "unit_name": "metre", "unit_symbol": "m",
        "unit_definition": "http://unitsofmeasure.org/ucum.html#m"})


def test_disasters_filter_by_kind_area_and_time(engine):
    with engine.begin() as conn:
        _seed_areas(conn)
        flood = records.add_disaster(conn, {
            "category": "natural", "kind": "heavy_rain", "title": "2022 수도권 집중호우",
            "started_at": datetime(2022, 8, 8, 12, tzinfo=UTC), "area_code": "11680", "deaths": 4})
        records.add_disaster(conn, {"category": "social", "kind": "fire", "title": "화재",
                                    "started_at": datetime(2023, 1, 20, tzinfo=UTC)})
    with engine.connect() as conn:
        assert flood["deaths"] == 4 and flood["injuries"] == 0
        assert [d["title"] for d in records.list_disasters(conn, kind="heavy_rain")] == ["2022 수도권 집중호우"]
        assert len(records.list_disasters(conn, area_code="116")) == 1
        assert [d["kind"] for d in records.list_disasters(conn, since=datetime(2023, 1, 1, tzinfo=UTC))] == ["fire"]


def test_projects_keep_their_phase_and_refuse_unknown_phases(engine):
    with engine.begin() as conn:
        records.add_project(conn, {"phase": "prevention", "title": "빗물펌프장 증설", "budget_krw": 10**10})
    with engine.connect() as conn:
        assert records.list_projects(conn, phase="prevention")[0]["budget_krw"] == 10**10
    with pytest.raises(IntegrityError), engine.begin() as conn:
        records.add_project(conn, {"phase": "celebration", "title": "x"})


def test_tokens_are_hashed_at_rest_and_revocable(engine):
    with engine.begin() as conn:
        token_id, token = access.create_token(conn, "situation room", "operator", center="situation_room")
    with engine.begin() as conn:
        stored = conn.execute(select(api_tokens.c.token_hash)).scalar_one()
        assert token not in stored and stored == access.hash_token(token)
        who = access.authenticate(conn, token)
        assert (who.name, who.role, who.center) == ("situation room", "operator", "situation_room")
        assert access.authenticate(conn, token + "x") is None
        access.revoke_token(conn, token_id)
        assert access.authenticate(conn, token) is None
        with pytest.raises(NotFound):
            access.revoke_token(conn, token_id)  # already revoked


def test_audit_log_keeps_who_did_what(engine):
    with engine.begin() as conn:
        access.record(conn, "cli:root", "city.load", target="seoul")
        access.record(conn, access.Principal(1, "gw", "device"), "POST /x", status=201)
    with engine.connect() as conn:
        newest, oldest = access.audit_trail(conn)
        assert (oldest["actor"], oldest["action"], oldest["target"]) == ("cli:root", "city.load", "seoul")
        assert (newest["role"], newest["status"]) == ("device", 201)


def test_dead_letters_keep_raw_payload_and_reason_until_replayed(engine):
    with engine.begin() as conn:
        letter = deadletters.keep(conn, "mqtt:haechi/v1/9/observations", "unknown datastream 9", b'{"result": 1}\xff')
    with engine.begin() as conn:
        [kept] = deadletters.pending(conn, source="mqtt:")
        assert kept["reason"] == "unknown datastream 9" and kept["payload"].startswith('{"result": 1}')
        deadletters.mark_replayed(conn, letter)
        assert deadletters.pending(conn) == []
