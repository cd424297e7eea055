"""Importers of public data: each format on a sample in its official layout and on broken files.

Samples in tests/data/imports are constructed in the publishers' column layouts (docs/imports.md);
the Han River slice is real (../shared/data). Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import SHARED_DATA
from sqlalchemy import func, select

from haechi.core.errors import InvalidInput
from haechi.imports import run_import
from haechi.store import areas, deadletters, places
from haechi.store.schema import (
    datastreams,
    disasters,
    import_runs,
    observations,
    observed_properties,
    things,
)

DATA = Path(__file__).parent / "data" / "imports"
HAN = SHARED_DATA / "han-river-gauges" / "data_2020.csv"


def run(engine, kind, name, **options):
    source = str(DATA / name) if not str(name).startswith(("/", "http")) else str(name)
    return run_import(engine, kind, source, actor="test", **options)


def readings(engine, property_code=None):
    """{(place ref, property): [(UTC time, result, quality)]} of every stored observation."""
    from haechi.store.schema import places as places_table
    query = (select(places_table.c.ref, observed_properties.c.code, observations.c.phenomenon_time,
                    observations.c.result, observations.c.result_quality)
             .join(datastreams, datastreams.c.id == observations.c.datastream_id)
             .join(observed_properties, observed_properties.c.id == datastreams.c.observed_property_id)
             .join(things, things.c.id == datastreams.c.thing_id)
             .join(places_table, places_table.c.id == things.c.place_id)
             .order_by(observations.c.phenomenon_time))
    found: dict = {}
    with engine.connect() as conn:
        for ref, code, time, result, quality in conn.execute(query):
            if property_code in (None, code):
                found.setdefault((ref, code), []).append((time, result, quality))
    return found


def letters(engine, kind):
    with engine.connect() as conn:
        return deadletters.pending(conn, source=f"import:{kind}", limit=1000)


def utc(*args):
    return datetime(*args, tzinfo=UTC)


# ── KMA ASOS hourly ────────────────────────────────────────────────────────────────────


def test_kma_asos_in_cp949_is_stored_in_catalogue_units_at_utc(engine):
    outcome = run(engine, "kma-asos", "kma_asos_hourly.csv")
    assert outcome.encoding == "cp949"
    assert (outcome.rows_read, outcome.rows_accepted, outcome.rows_rejected, outcome.rows_duplicate) == (6, 6, 0, 0)
    # 6 rows × 4 measured columns, less the one hour without rain (blank 강수량 is no reading, not 0)
    assert outcome.observations_stored == 23
    assert "풍향(16방위)" in outcome.ignored_columns
    seoul = readings(engine)
    assert seoul[("108", "air_temperature")][0] == (utc(2020, 8, 5, 16), 23.4, "good")  # 01:00 KST
    assert [r[1] for r in seoul[("108", "rainfall_1h")]] == [2.5, 6.0, 11.5]
    assert seoul[("116", "wind_speed")][1][1] == 6.1
    with engine.connect() as conn:
        assert places.list_places(conn, "weather_station")[0]["name_ko"] == "서울"
        run_row = conn.execute(select(import_runs)).one()
    assert (run_row.kind, run_row.status, run_row.rows_accepted, run_row.encoding) == ("kma-asos", "done", 6, "cp949")


def test_kma_asos_reimport_skips_every_row_as_duplicate(engine):
    run(engine, "kma-asos", "kma_asos_hourly.csv")
    again = run(engine, "kma-asos", "kma_asos_hourly.csv")
    assert (again.rows_accepted, again.rows_duplicate, again.observations_stored) == (0, 6, 0)
    assert again.observations_duplicate == 23
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(observations)).scalar() == 23


def test_kma_asos_broken_rows_are_kept_with_reasons_and_the_rest_stored(engine):
    outcome = run(engine, "kma-asos", "kma_asos_broken.csv")  # UTF-8 with a BOM
    assert outcome.encoding == "utf-8"
    assert (outcome.rows_read, outcome.rows_accepted, outcome.rows_rejected) == (6, 2, 4)
    reasons = {r["row"]: (r["field"], r["reason"]) for r in outcome.rejections}
    assert reasons == {2: ("기온(°C)", "not a number: 'abc'"), 3: ("일시", "unreadable time '2020-08-07 25:00'"),
                       4: ("지점", "no station code"), 5: ("강수량(mm)", "not a number: '1.0.2'")}
    kept = letters(engine, "kma-asos")
    assert len(kept) == 4 and "기온(°C): not a number: 'abc'" in kept[0]["reason"]
    assert '"기온(°C)":"abc"' in kept[0]["payload"]  # the row as received
    # 64 °C is a reading, not a format error: stored, flagged bad by QC
    hot = [r for r in readings(engine, "air_temperature")[("108", "air_temperature")] if r[1] == 64.0]
    assert hot and hot[0][2] == "bad" and outcome.quality["bad"] == 1


def test_a_file_in_neither_utf8_nor_cp949_is_refused_and_the_run_recorded_failed(engine, tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("지점,일시\n".encode() + b"108,\xff\xfe\xfa\n")
    with pytest.raises(InvalidInput, match="neither UTF-8 nor CP949"):
        run(engine, "kma-asos", str(path))
    with engine.connect() as conn:
        failed = conn.execute(select(import_runs)).one()
    assert failed.status == "failed" and "neither UTF-8 nor CP949" in failed.error


def test_utf8_bom_with_cp949_inside_is_refused(engine, tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_bytes(b"\xef\xbb\xbf" + "지점,일시\n".encode("cp949"))
    with pytest.raises(InvalidInput, match="BOM but is not valid UTF-8"):
        run(engine, "kma-asos", str(path))


def test_wrong_columns_are_refused_naming_what_is_missing(engine):
    with pytest.raises(InvalidInput, match="missing 일시, 지점") as caught:
        run(engine, "kma-asos", "airkorea_final.csv")
    assert caught.value.field == "header"
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(observations)).scalar() == 0


# ── AirKorea ───────────────────────────────────────────────────────────────────────────


def test_airkorea_hour_24_is_midnight_and_gases_stay_in_ppm(engine):
    outcome = run(engine, "airkorea", "airkorea_final.csv")
    assert outcome.encoding == "cp949"
    assert (outcome.rows_read, outcome.rows_accepted, outcome.rows_rejected) == (5, 5, 0)
    assert outcome.observations_stored == 5 * 6 - 2  # a blank PM25 and a "-" SO2 are missing values
    found = readings(engine)
    junggu_pm10 = found[("중구", "pm10")]  # keyed by the station name, as the pack and the live feed are
    assert junggu_pm10[-1][:2] == (utc(2023, 4, 1, 15), 60.0)  # 2023-04-01 24시 KST = 04-02 00:00 KST
    assert found[("중구", "o3")][0][1] == 0.021
    assert len(found[("종로구", "so2")]) == 1
    assert "측정소코드" in outcome.ignored_columns


def test_airkorea_bad_times_and_numbers_are_rejected(engine):
    outcome = run(engine, "airkorea", "airkorea_broken.csv")
    assert (outcome.rows_accepted, outcome.rows_rejected) == (1, 3)
    assert [(r["field"], r["reason"]) for r in outcome.rejections] == [
        ("측정일시", "unreadable time '2023040225'"), ("측정일시", "unreadable time '20230402'"),
        ("PM10", "not a number: '8x5'")]
    assert len(letters(engine, "airkorea")) == 3


# ── HRFCO and the Han River competition data ───────────────────────────────────────────


def test_hrfco_water_levels_and_rainfall_from_the_open_api_json(engine):
    outcome = run(engine, "hrfco", "hrfco_waterlevel.json")
    assert (outcome.rows_read, outcome.rows_accepted, outcome.rows_rejected) == (6, 4, 2)
    assert {r["field"] for r in outcome.rejections} == {"ymdhm", "wl"}
    found = readings(engine)
    assert found[("1018683", "water_level")][-1][:2] == (utc(2020, 8, 6, 5, 20), 8.73)
    assert found[("1018683", "discharge")][0][1] == 18710.2
    assert ("1018680", "discharge") not in found  # blank flows are missing, not zero
    rain = run(engine, "hrfco", "hrfco_rainfall.json")
    assert rain.observations_stored == 3
    assert [r[1] for r in readings(engine, "rainfall")[("10184100", "rainfall")]] == [12.0, 9.5, 7.0]
    with engine.connect() as conn:
        assert places.count_places(conn) == {"river_gauge": 2, "rain_gauge": 1}


def test_hrfco_json_that_is_not_json_is_refused(engine, tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"content": [', encoding="utf-8")
    with pytest.raises(InvalidInput, match="not JSON"):
        run(engine, "hrfco", str(path))


@pytest.fixture
def han_slice(tmp_path):
    """1–7 August 2020 of the real Han River data (the flood crest is on the 6th)."""
    if not HAN.exists():
        pytest.skip("../shared/data is not here")
    lines = HAN.read_text(encoding="utf-8").splitlines()
    kept = [lines[0]] + [line for line in lines[1:] if line.startswith(("2020-08-0", ))][:1008]
    path = tmp_path / "han_2020_08.csv"
    path.write_text("\n".join(kept) + "\n", encoding="utf-8")
    return path, len(kept) - 1


def test_han_river_real_slice_gives_gauge_heights_where_the_datum_is_known(engine, han_slice):
    path, rows = han_slice
    with engine.begin() as conn:  # Hangang Bridge's gauge zero, as the Seoul pack loads it
        places.save_places(conn, [{"kind": "river_gauge", "ref": "1018683", "name_ko": "한강대교",
                                   "datum_elevation_m": 2.07}])
    outcome = run(engine, "han-river", str(path))
    assert outcome.rows_read == rows and outcome.rows_rejected == 0 and outcome.rows_accepted == rows
    assert {"swl", "tototf", "tide_level"} <= set(outcome.ignored_columns)
    hangang = readings(engine, "water_level")[("1018683", "water_level")]
    peak = max(hangang, key=lambda r: r[1])
    assert peak[0] == utc(2020, 8, 6, 5, 20)  # 14:20 KST, the crest of the August 2020 flood
    assert peak[1] == pytest.approx(10.80 - 2.07)
    jamsu = readings(engine, "water_level")[("1018680", "water_level")]
    assert max(r[1] for r in jamsu) > 10  # no datum known: elevation in m, as published
    assert sum(outcome.quality.values()) == outcome.observations_stored
    again = run(engine, "han-river", str(path))
    assert again.rows_duplicate == rows and again.observations_stored == 0


def test_han_river_file_without_gauge_columns_is_refused(engine, tmp_path):
    path = tmp_path / "no_gauges.csv"
    path.write_text("ymdhm,swl\n2020-08-06 14:20,25.1\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match="missing any measured column"):
        run(engine, "han-river", str(path))


# ── Haechi's own observation CSV (the benchmark's format) ──────────────────────────────


def kma_stream(engine, property_code: str | None = None) -> int:
    """A datastream made by importing the KMA sample (its first, or the first of ``property_code``)."""
    run(engine, "kma-asos", "kma_asos_hourly.csv")
    query = select(datastreams.c.id).join(observed_properties).order_by(datastreams.c.id)
    if property_code:
        query = query.where(observed_properties.c.code == property_code)
    with engine.connect() as conn:
        return conn.execute(query).scalars().first()


def test_observation_csv_names_datastreams_and_refuses_unknown_ones(engine, tmp_path):
    stream = kma_stream(engine)
    path = tmp_path / "obs.csv"
    path.write_text("datastream_id,phenomenon_time,result\n"
                    f"{stream},2021-01-01T00:00:00+09:00,1.5\n{stream},2021-01-01T00:10:00Z,1.7\n"
                    "99999,2021-01-01T00:00:00Z,1.0\n"
                    f"{stream},2021-01-01 00:20,1.8\n", encoding="utf-8")
    outcome = run(engine, "observations", str(path))
    assert (outcome.rows_accepted, outcome.rows_rejected) == (2, 2)
    assert [r["reason"] for r in outcome.rejections] == ["unknown datastream '99999'",
                                                         "unreadable time '2021-01-01 00:20'"]


def test_a_row_without_any_value_is_refused_not_counted_as_accepted(engine, tmp_path):
    stream = kma_stream(engine)
    path = tmp_path / "blank.csv"
    path.write_text("datastream_id,phenomenon_time,result\n"
                    f"{stream},2021-02-01T00:00:00Z,1.5\n{stream},2021-02-01T01:00:00Z,\n", encoding="utf-8")
    outcome = run(engine, "observations", str(path))
    assert (outcome.rows_accepted, outcome.rows_rejected, outcome.observations_stored) == (1, 1, 1)
    assert outcome.rejections[0]["reason"] == "no value in any measured column (result)"
    assert any(letter["reason"].startswith("row 2, result: no value") for letter in letters(engine, "observations"))


def test_a_long_file_is_stored_whole_with_each_reading_flag_and_reason(engine, tmp_path):
    """More rows than one INSERT carries, and several blocks read ahead, with a bad value and a spike."""
    stream = kma_stream(engine, "air_temperature")
    values = [10 + (i % 7) / 10 for i in range(2500)]
    values[1200] = 99.0  # beyond the catalogue's 50 °C: bad
    values[1800] += 35  # 35 °C in 10 minutes, over 3 °C per minute: a spike
    path = tmp_path / "long.csv"
    start = int(utc(2022, 1, 1).timestamp())
    path.write_text("datastream_id,phenomenon_time,result\n" + "".join(
        f"{stream},{datetime.fromtimestamp(start + 600 * i, UTC):%Y-%m-%dT%H:%M:%SZ},{v}\n"
        for i, v in enumerate(values)), encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("haechi.imports.tabular.BLOCK_BYTES", 16 << 10)  # several blocks of ~400 rows
        outcome = run(engine, "observations", str(path))
    assert (outcome.rows_accepted, outcome.observations_stored, outcome.rows_rejected) == (2500, 2500, 0)
    o = observations.c
    with engine.connect() as conn:
        stored = conn.execute(select(o.phenomenon_time, o.result, o.result_quality, o.qc_reasons)
                              .where(o.datastream_id == stream, o.phenomenon_time >= utc(2022, 1, 1))
                              .order_by(o.phenomenon_time)).all()
    assert [r.result for r in stored] == values
    assert stored[0].phenomenon_time == utc(2022, 1, 1) and stored[-1].phenomenon_time == utc(2022, 1, 18, 8, 30)
    flagged = {i: (r.result_quality, r.qc_reasons) for i, r in enumerate(stored) if r.result_quality != "good"}
    assert flagged.keys() == {1200, 1800}
    assert flagged[1200][0] == "bad" and flagged[1200][1][0].startswith("out of range: 99")
    assert flagged[1800][0] == "suspect" and flagged[1800][1][0].startswith("spike")
    assert all(r.qc_reasons is None for r in stored if r.result_quality == "good")


def test_reading_ahead_keeps_order_passes_errors_on_and_stops_with_its_consumer():
    from itertools import count

    from haechi.imports.tabular import read_ahead
    assert list(read_ahead(iter(range(100)))) == list(range(100))

    def broken():
        yield 1
        raise InvalidInput("unreadable CSV", field="file")
    with pytest.raises(InvalidInput, match="unreadable CSV"):
        list(read_ahead(broken()))
    produced = count()
    taken = []
    for item in read_ahead(iter(lambda: next(produced), None), depth=2):
        taken.append(item)
        if len(taken) == 3:
            break  # an endless source: the producer must stop, not run on (or hang the consumer)
    assert taken == [0, 1, 2] and next(produced) <= 7


# ── registers ──────────────────────────────────────────────────────────────────────────


@pytest.fixture
def districts(engine):
    with engine.begin() as conn:
        areas.save_areas(conn, [{"code": "11", "level": "city", "name_ko": "서울특별시"}] + [
            {"code": code, "level": "district", "parent_code": "11", "name_ko": name}
            for code, name in (("11110", "종로구"), ("11170", "용산구"), ("11680", "강남구"))])


def test_disaster_history_is_validated_row_by_row(engine, districts):
    outcome = run(engine, "disasters", "disasters.csv")
    assert (outcome.rows_read, outcome.rows_accepted, outcome.rows_rejected) == (8, 3, 5)
    reasons = {r["row"]: (r["field"], r["reason"]) for r in outcome.rejections}
    assert reasons[4][0] == "발생일시"
    assert reasons[5] == ("구분", "typhoon is a natural disaster, not social")
    assert reasons[6][0] == "재난종류" and "'화산'" in reasons[6][1]
    assert reasons[7] == ("부상", "a count cannot be negative: '-3'")
    assert reasons[8] == ("지역코드", "unknown area code '99999' (load the city pack first)")
    with engine.connect() as conn:
        stored = {r.title: r for r in conn.execute(select(disasters))}
    itaewon = stored["이태원 인파사고"]
    assert (itaewon.kind, itaewon.category, itaewon.deaths, itaewon.injuries) == ("crowd", "social", 159, 196)
    assert itaewon.started_at == utc(2022, 10, 29, 13, 15)
    assert stored["강남역 일대 집중호우 침수"].damage_krw == 1_200_000_000  # 천원 → 원
    assert len(letters(engine, "disasters")) == 5
    again = run(engine, "disasters", "disasters.csv")
    assert (again.rows_accepted, again.rows_duplicate, again.rows_rejected) == (0, 3, 5)


def test_facility_register_fills_places_and_facility_details(engine, districts):
    outcome = run(engine, "facilities", "facilities.csv")
    assert (outcome.rows_accepted, outcome.rows_rejected) == (4, 3)
    assert {r["field"] for r in outcome.rejections} == {"안전등급", "준공년도", "경도"}
    with engine.connect() as conn:
        found = {p["ref"]: p for p in places.list_places(conn, "facility")}
    bridge = found["BR-0001"]
    assert (bridge["facility_type"], bridge["completion_year"], bridge["safety_grade"], bridge["length_m"]) == \
        ("bridge", 1917, "B", 1005.0)
    assert bridge["area_code"] == "11170" and found["BD-0001"]["floors"] == 13
    again = run(engine, "facilities", "facilities.csv")
    assert (again.rows_accepted, again.rows_duplicate) == (0, 4)


def test_a_changed_register_row_updates_the_place(engine, tmp_path, districts):
    run(engine, "facilities", "facilities.csv")
    changed = (DATA / "facilities.csv").read_text(encoding="utf-8").replace("1970,C", "1970,D")
    path = tmp_path / "facilities_2024.csv"
    path.write_text(changed, encoding="utf-8")
    outcome = run(engine, "facilities", str(path))
    assert (outcome.rows_accepted, outcome.rows_duplicate) == (1, 3)
    with engine.connect() as conn:
        tunnel = next(p for p in places.list_places(conn, "facility") if p["ref"] == "TN-0001")
    assert tunnel["safety_grade"] == "D"


@pytest.mark.parametrize(("kind", "name", "place_kind", "accepted", "rejected", "fact"), [
    ("shelters", "shelters.csv", "shelter", 3, 1, ("S-001", "capacity", 12000)),
    ("cctv", "cctv.csv", "cctv", 2, 1, ("C-002", "fov_deg", 90.0)),
    ("school-zones", "school_zones.csv", "school_zone", 1, 0, ("Z-001", "radius_m", 300.0)),
    ("hospitals", "hospitals.csv", "hospital", 1, 0, ("A1100010", "er_beds", 64)),
    ("fire-stations", "fire_stations.csv", "fire_station", 1, 0, ("F-1101", "lat", 37.576)),
])
def test_place_registers(engine, kind, name, place_kind, accepted, rejected, fact):
    outcome = run(engine, kind, name)
    assert (outcome.rows_accepted, outcome.rows_rejected) == (accepted, rejected)
    ref, key, value = fact
    with engine.connect() as conn:
        found = {p["ref"]: p for p in places.list_places(conn, place_kind)}
    assert found[ref][key] == value
    assert len(letters(engine, kind)) == rejected


def test_a_register_without_its_key_columns_is_refused(engine):
    with pytest.raises(InvalidInput, match="not a facilities register: missing 시설종류"):
        run(engine, "facilities", "shelters.csv")


# ── mapping files ──────────────────────────────────────────────────────────────────────


def test_mapped_csv_observations_convert_units(engine):
    outcome = run(engine, "mapped", "mapped_levels.csv", mapping=DATA / "mapped_levels.toml")
    assert (outcome.rows_accepted, outcome.rows_rejected) == (2, 1)
    levels = readings(engine, "water_level")[("G1", "water_level")]
    assert [r[1] for r in levels] == [1.52, 1.78]  # cm → m
    assert levels[0][0] == utc(2022, 8, 8, 12)


def test_mapped_geojson_places_take_position_from_geometry(engine):
    outcome = run(engine, "mapped", "mapped_shelters.geojson", mapping=DATA / "mapped_shelters.toml")
    assert (outcome.rows_accepted, outcome.rows_rejected) == (1, 1)
    assert outcome.rejections[0]["field"] == "cap"
    with engine.connect() as conn:
        shelter = places.list_places(conn, "shelter")[0]
    assert (shelter["ref"], shelter["lon"], shelter["capacity"], shelter["shelter_kind"]) == \
        ("YD-1", 126.9246, 120, "cooling")


def test_a_mapping_without_measures_is_refused(engine, tmp_path):
    mapping = tmp_path / "m.toml"
    mapping.write_text('target = "observations"\n[columns]\nstation = "a"\ntime = "b"\n', encoding="utf-8")
    with pytest.raises(InvalidInput, match="measures"):
        run(engine, "mapped", "mapped_levels.csv", mapping=mapping)


def test_unknown_kind_and_missing_file_are_refused(engine):
    with pytest.raises(InvalidInput, match="unknown import kind"):
        run(engine, "weather", "kma_asos_hourly.csv")
    with pytest.raises(InvalidInput, match="no such file"):
        run(engine, "kma-asos", "nothing_here.csv")


def test_vectorised_qc_flags_as_the_pipeline_does_for_spikes_bad_values_and_stuck_runs():
    """bulk.assess over columns against qc.step reading by reading, on two streams (pure, no DB)."""
    import numpy as np

    from haechi.imports import bulk
    from haechi.ingest import qc
    from haechi.model.catalogue import catalogue

    start = int(utc(2020, 8, 1).timestamp())
    level = [3.0 + 0.01 * k for k in range(100)]
    level[20] = 13.0  # a spike
    level[40] = 50.0  # out of range
    level[41] = 3.45  # right after the bad one: judged against the last plausible reading
    dust = [30.0 + k % 7 for k in range(30)] + [55.0] * 30  # a flat run long enough to be stuck
    streams = [(1, "water_level", 600, level), (2, "pm10", 3600, dust)]
    columns = bulk.Columns.concat([
        bulk.Columns(np.arange(len(v)), np.full(len(v), sid), start + step * np.arange(len(v)), np.array(v))
        for sid, _, step, v in streams])
    now = utc(2021, 1, 1)
    flags, reasons = bulk.assess(columns, {1: catalogue()["water_level"].limits, 2: catalogue()["pm10"].limits}, now)
    expected = []
    for _, prop, step, values in streams:
        memory = qc.StreamMemory()
        for k, value in enumerate(values):
            moment = datetime.fromtimestamp(start + step * k, UTC)
            expected.append(qc.step(value, moment, now, memory, catalogue()[prop].limits)[0])
    assert list(bulk.FLAG_NAMES[flags]) == expected
    assert expected.count("suspect") > 5 and expected.count("bad") == 1  # the series does exercise each check
    assert reasons[20][0].startswith("spike") and reasons[40][0].startswith("out of range")
