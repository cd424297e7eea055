"""Seoul's daily air-quality files (Seoul Open Data OA-2218, ../shared/data/air-quality) imported as
published, end to end: uploaded over the API in the portal's CP949 and through the command in UTF-8,
into a Seoul pack on SQLite and PostgreSQL. Every expected figure is counted from the file itself."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime

import pytest
from conftest import SHARED_DATA
from sqlalchemy import func, select
from test_api_support import build_world
from typer.testing import CliRunner

from haechi.cities.load import load_city
from haechi.cli import app as cli_app
from haechi.core.settings import get_settings
from haechi.imports.formats import SEOUL_AIR_DAILY
from haechi.store import deadletters, open_db
from haechi.store.schema import datastreams, observations, observed_properties, places, things

DAILY = SHARED_DATA / "air-quality" / "daily"
STATIONS = SHARED_DATA / "air-quality" / "stations-2024" / "stations.csv"
pytestmark = pytest.mark.skipif(not DAILY.exists() or not STATIONS.exists(), reason="../shared/data is not here")

MEASURES = {m.column: m for m in SEOUL_AIR_DAILY.measures}


def published(year: int) -> tuple[list[str], list[dict[str, str]]]:
    with open(DAILY / f"{year}.csv", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def blank(row: dict[str, str]) -> bool:
    return not any(row[c].strip() for c in MEASURES)


def airkorea_names() -> set[str]:
    with open(STATIONS, encoding="utf-8") as f:
        return {r["station_name"] for r in csv.DictReader(f)}


def stored(engine, property_code: str) -> dict[tuple[str, datetime], float]:
    """(air station ref, UTC time) → the stored result of ``property_code``."""
    query = (select(places.c.ref, observations.c.phenomenon_time, observations.c.result)
             .join(datastreams, datastreams.c.id == observations.c.datastream_id)
             .join(observed_properties, observed_properties.c.id == datastreams.c.observed_property_id)
             .join(things, things.c.id == datastreams.c.thing_id).join(places, places.c.id == things.c.place_id)
             .where(observed_properties.c.code == property_code, places.c.kind == "air_station"))
    with engine.connect() as conn:
        return {(ref, at.replace(tzinfo=UTC) if at.tzinfo is None else at): v for ref, at, v in conn.execute(query)}


@pytest.fixture
def seoul(engine):
    load_city(engine, "seoul")
    return engine


def test_the_published_cp949_file_uploaded_over_the_api_lands_on_the_airkorea_stations(seoul):
    header, rows = published(2018)
    assert set(MEASURES) <= set(header)  # the layout reads the headers as Seoul prints them
    world = build_world(seoul)
    body = (DAILY / "2018.csv").read_text(encoding="utf-8").encode("cp949")  # as the portal publishes it
    response = world.client.post("/api/v1/imports/seoul-air-daily?filename=2018.csv", content=body,
                                 headers=world.auth("operator") | {"content-type": "text/csv"})
    assert response.status_code == 201, response.text
    outcome = response.json()

    # Rows: every one read; those without any value refused with their reason, the rest accepted.
    empty = [i for i, r in enumerate(rows, start=1) if blank(r)]
    cells = sum(1 for r in rows for c in MEASURES if r[c].strip())
    assert outcome["encoding"] == "cp949"
    assert (outcome["rows_read"], outcome["rows_rejected"]) == (len(rows), len(empty))
    assert outcome["rows_accepted"] == len(rows) - len(empty)
    assert outcome["observations_stored"] == cells  # each filled cell once; blanks are nothing
    assert {r["reason"].split(" (")[0] for r in outcome["rejections"]} == {"no value in any measured column"}
    with seoul.connect() as conn:
        kept = deadletters.pending(conn, source="import:seoul-air-daily", limit=1000)
    assert len(kept) == len(empty)
    first = rows[empty[0] - 1]
    letter = next(json.loads(d["payload"]) for d in kept if json.loads(d["payload"])["row"] == empty[0])
    assert (letter["측정소명"], letter["측정일시"]) == (first["측정소명"], first["측정일시"])  # kept whole, to be fixed

    # Stations: the file's names are AirKorea's, so its rows land on the pack's air stations.
    pack = airkorea_names()
    with seoul.connect() as conn:
        located = dict(conn.execute(select(places.c.ref, places.c.lon.is_not(None))
                                    .where(places.c.kind == "air_station")).all())
    in_file = {r["측정소명"] for r in rows}
    renamed = {SEOUL_AIR_DAILY.station_refs.get(n, n) for n in in_file}
    assert "동작대로" in in_file and "동작대로 중앙차로" in pack and "동작대로" not in located  # Seoul's spelling
    assert pack <= set(located) and all(located[n] for n in pack)  # the pack's 40, still where they were
    assert set(located) == pack | renamed  # others (background sites) become places of their own
    assert not any(located[n] for n in renamed - pack)  # …without a position the file does not give

    # Values and units as published, at the start of their day in KST, kept apart from hourly pm10.
    pm10, no2 = stored(seoul, "pm10_24h"), stored(seoul, "no2_24h")
    day_one = {r["측정소명"]: r for r in rows if r["측정일시"] == "20180101"}
    new_year = datetime(2017, 12, 31, 15, tzinfo=UTC)  # 1 January 2018, 00:00 KST
    assert pm10[("종로구", new_year)] == float(day_one["종로구"]["미세먼지농도(㎍/㎥)"])
    assert no2[("종로구", new_year)] == float(day_one["종로구"]["이산화질소농도(ppm)"])
    assert pm10[("동작대로 중앙차로", new_year)] == float(day_one["동작대로"]["미세먼지농도(㎍/㎥)"])
    assert len(pm10) == sum(1 for r in rows if r["미세먼지농도(㎍/㎥)"].strip())
    assert stored(seoul, "pm10") == {}  # the hourly streams the warning rules read got no daily mean
    daily = [m.property for m in MEASURES.values()]
    with seoul.connect() as conn:
        units = dict(conn.execute(select(observed_properties.c.code, datastreams.c.unit_symbol)
                                  .join(datastreams, datastreams.c.observed_property_id == observed_properties.c.id)
                                  .where(observed_properties.c.code.in_(daily))).all())
    assert units == {"pm10_24h": "ug/m3", "pm25_24h": "ug/m3", "no2_24h": "ppm", "o3_24h": "ppm",
                     "co_24h": "ppm", "so2_24h": "ppm"}  # as the headers print them: nothing converted


def test_the_command_imports_the_utf8_copy_and_a_second_run_adds_nothing(db_url, monkeypatch):
    _, rows = published(2021)
    monkeypatch.setenv("HAECHI_DATABASE_URL", db_url)
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        first = runner.invoke(cli_app, ["import", "seoul-air-daily", str(DAILY / "2021.csv")])
        again = runner.invoke(cli_app, ["import", "seoul-air-daily", str(DAILY / "2021.csv")])
    finally:
        get_settings.cache_clear()
    assert first.exit_code == 0 and again.exit_code == 0, first.output + again.output
    empty = sum(1 for r in rows if blank(r))
    assert "seoul-air-daily · utf-8" in first.output
    assert _count(first.output, "rows read") == len(rows) and _count(first.output, "rejected") == empty
    assert _count(first.output, "accepted") == len(rows) - empty
    assert _count(again.output, "duplicates skipped") == len(rows) - empty  # nothing stored twice
    assert _count(again.output, "observations stored") == 0
    engine = open_db(db_url)
    try:
        with engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(observations)).scalar()
    finally:
        engine.dispose()
    assert total == sum(1 for r in rows for c in MEASURES if r[c].strip())


def _count(output: str, label: str) -> int:
    line = next(line for line in output.splitlines() if label in line)
    return int(line.split("│")[-2].strip().replace(",", ""))

