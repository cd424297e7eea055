"""The live public feeds, end to end against recorded answers of each official API (written from the
published guides, tests/data/connectors; no network): readings under the right datastreams in a real
DB, nothing stored twice, gaps back-filled after an outage, and error, empty and refused-key pages
ending in a clear status with the reason kept."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import httpx
import orjson
import pytest
from sqlalchemy import select

from haechi.imports.connectors import feeds, run_feed
from haechi.imports.connectors.schedule import due, run_due
from haechi.ingest.pipeline import Pipeline
from haechi.store.schema import (
    connector_status,
    datastreams,
    dead_letters,
    import_runs,
    observations,
    observed_properties,
    places,
    things,
)

RECORDED = Path(__file__).parent / "data" / "connectors"
KST = timezone(timedelta(hours=9))
KEY = "Ab3+cD/9xYz=="  # as the portal prints a key: characters that need escaping in a URL


def kst(*args) -> datetime:
    return datetime(*args, tzinfo=KST).astimezone(UTC)


class Recorded:
    """The official APIs as recorded: each request gets the answer of the first route it matches.

    A route is (path fragment, query parameters it must carry) → answers served in turn (the last one
    repeats); an answer is a file under tests/data/connectors, or (HTTP status, file or text).
    """

    def __init__(self, routes: list[tuple[str, dict, list]]) -> None:
        self.routes = [(path, params, list(answers)) for path, params, answers in routes]
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        path = request.url.path
        for fragment, params, answers in self.routes:
            if fragment in path and all(request.url.params.get(k) == v for k, v in params.items()):
                answer = answers.pop(0) if len(answers) > 1 else answers[0]
                status, body = answer if isinstance(answer, tuple) else (200, answer)
                file = RECORDED / body
                content = file.read_bytes() if file.is_file() else body.encode()
                return httpx.Response(status, content=content)
        return httpx.Response(404, text="no recorded answer")

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)


def run(engine, name, recorded, now, overrides=None, key=KEY, pipeline=None):
    feed = feeds({name: overrides or {}})[name]

    async def no_wait(seconds):
        return None
    return asyncio.run(run_feed(feed, engine, pipeline or Pipeline(engine, now=lambda: now), key=key,
                                transport=recorded.transport(), now=now, sleep=no_wait))


def readings(engine, kind, ref, prop):
    """(time, value) of a station's property, from the DB as a user would query it."""
    query = (select(observations.c.phenomenon_time, observations.c.result)
             .join(datastreams, datastreams.c.id == observations.c.datastream_id)
             .join(observed_properties, observed_properties.c.id == datastreams.c.observed_property_id)
             .join(things, things.c.id == datastreams.c.thing_id).join(places, places.c.id == things.c.place_id)
             .where(places.c.kind == kind, places.c.ref == ref, observed_properties.c.code == prop)
             .order_by(observations.c.phenomenon_time))
    with engine.connect() as conn:
        return [(t.astimezone(UTC), v) for t, v in conn.execute(query)]


def letters(engine, connector):
    with engine.connect() as conn:
        return [r.reason for r in conn.execute(select(dead_letters).where(
            dead_letters.c.source == f"connect:{connector}"))]


def last_import(engine, connector):
    with engine.connect() as conn:
        return conn.execute(select(import_runs).where(import_runs.c.kind == f"connect:{connector}")
                            .order_by(import_runs.c.id.desc())).first()


AIR_1400 = [("getCtprvnRltmMesureDnsty", {"pageNo": "1"}, ["airkorea/ctprvn_1400_p1.json"]),
            ("getCtprvnRltmMesureDnsty", {"pageNo": "2"}, ["airkorea/ctprvn_1400_p2.json"])]
STATION_HISTORY = [("getMsrstnAcctoRltmMesureDnsty", {"stationName": name}, [f"airkorea/msrstn_{file}_daily.json"])
                   for name, file in (("종로구", "jongno"), ("중구", "jung"), ("용산구", "yongsan"))]


# ── AirKorea ─────────────────────────────────────────────────────────────────────────────


def test_airkorea_pages_land_under_each_station_and_flags_are_refused_with_reason(engine):
    from haechi.cities.provision import provision_stations
    from haechi.store import places as place_store

    with engine.begin() as conn:  # 종로구 as the Seoul pack provisions it; 중구 and 용산구 are not in this DB
        place_store.save_places(conn, [{"kind": "air_station", "ref": "종로구", "name_ko": "종로구",
                                        "lon": 127.005, "lat": 37.572, "source": "pack"}])
        provision_stations(conn)
    pack_stream = stream_of(engine, "air_station", "종로구", "pm10")
    recorded = Recorded(AIR_1400)
    report = run(engine, "airkorea", recorded, kst(2025, 7, 15, 14, 20), {"page_size": 2})

    assert (report.status, report.requests, report.stations) == ("ok", 2, 3)
    assert [r.url.params["pageNo"] for r in recorded.seen] == ["1", "2"]
    assert {r.url.params["sidoName"] for r in recorded.seen} == {"서울"}
    assert readings(engine, "air_station", "종로구", "pm10") == [(kst(2025, 7, 15, 14), 42.0)]
    assert readings(engine, "air_station", "용산구", "o3") == [(kst(2025, 7, 15, 14), 0.055)]
    assert readings(engine, "air_station", "중구", "pm25") == []  # 통신장애: no number stored
    assert readings(engine, "air_station", "용산구", "so2") == []
    reasons = letters(engine, "airkorea")
    assert any("중구: flagged by AirKorea: 통신장애" in r for r in reasons)
    assert any("용산구: no measurement ('-')" in r for r in reasons)
    assert report.stored == 16 and report.rejected == 2
    assert stream_of(engine, "air_station", "종로구", "pm10") == pack_stream  # the pack's own datastream
    assert stream_of(engine, "air_station", "중구", "pm10") is not None  # provisioned by the connector


def stream_of(engine, kind, ref, prop):
    with engine.connect() as conn:
        return conn.execute(
            select(datastreams.c.id).join(things, things.c.id == datastreams.c.thing_id)
            .join(places, places.c.id == things.c.place_id)
            .join(observed_properties, observed_properties.c.id == datastreams.c.observed_property_id)
            .where(places.c.kind == kind, places.c.ref == ref, observed_properties.c.code == prop)).scalar()


def test_a_second_run_stores_nothing_new(engine):
    now = kst(2025, 7, 15, 14, 20)
    first = run(engine, "airkorea", Recorded(AIR_1400), now, {"page_size": 2})
    again = run(engine, "airkorea", Recorded(AIR_1400), now + timedelta(minutes=5), {"page_size": 2})
    assert first.stored == 16
    assert (again.status, again.stored, again.duplicates) == ("ok", 0, 16)
    assert len(readings(engine, "air_station", "종로구", "pm10")) == 1


def test_an_outage_then_the_gap_is_back_filled_from_each_station_history(engine):
    run(engine, "airkorea", Recorded(AIR_1400), kst(2025, 7, 15, 14, 20), {"page_size": 2})

    outage = run(engine, "airkorea", Recorded([("getCtprvnRltmMesureDnsty", {}, [(503, "Service Unavailable")])]),
                 kst(2025, 7, 15, 15, 20))
    assert outage.status == "failed" and "HTTP 503" in outage.detail
    assert outage.requests == 4 and outage.retries == 3  # attempts in connectors.toml
    assert last_import(engine, "airkorea").status == "failed"

    recorded = Recorded([("getCtprvnRltmMesureDnsty", {}, ["airkorea/ctprvn_1800.json"]), *STATION_HISTORY])
    back = run(engine, "airkorea", recorded, kst(2025, 7, 15, 18, 20))
    assert back.status == "ok"
    histories = [r for r in recorded.seen if "getMsrstnAcctoRltmMesureDnsty" in r.url.path]
    assert sorted(r.url.params["stationName"] for r in histories) == ["용산구", "종로구", "중구"]
    assert {r.url.params["dataTerm"] for r in histories} == {"DAILY"}
    hours = [t for t, _ in readings(engine, "air_station", "종로구", "pm10")]
    assert len(hours) == len(set(hours))  # stored once each
    assert {kst(2025, 7, 15, h) for h in (14, 15, 17, 18)} <= set(hours)
    assert kst(2025, 7, 15, 16) not in hours  # 점검및교정 that hour: refused, kept with its reason
    assert any("종로구: flagged by AirKorea: 점검및교정" in r for r in letters(engine, "airkorea"))
    assert kst(2025, 7, 15, 0) in hours  # "2025-07-14 24:00" is midnight ending the 14th


@pytest.mark.parametrize(("answer", "status", "words"), [
    ("airkorea/key_not_registered.xml", "key_refused", "30 SERVICE_KEY_IS_NOT_REGISTERED_ERROR"),
    ("airkorea/quota_exceeded.xml", "quota", "22 LIMITED_NUMBER_OF_SERVICE_REQUESTS_EXCEEDS_ERROR"),
])
def test_a_refused_key_or_spent_quota_is_not_retried_and_the_reason_kept(engine, answer, status, words):
    recorded = Recorded([("getCtprvnRltmMesureDnsty", {}, [answer])])
    report = run(engine, "airkorea", recorded, kst(2025, 7, 15, 14, 20))
    assert (report.status, report.requests, report.retries) == (status, 1, 0)
    assert words in report.detail
    with engine.connect() as conn:
        saved = conn.execute(select(connector_status).where(connector_status.c.connector == "airkorea")).one()
    assert (saved.status, saved.ok_at) == (status, None) and words in saved.detail
    assert words in last_import(engine, "airkorea").error


def test_no_data_is_an_empty_run_not_a_failure(engine):
    report = run(engine, "airkorea", Recorded([("getCtprvnRltmMesureDnsty", {}, ["airkorea/nodata.json"])]),
                 kst(2025, 7, 15, 14, 20))
    assert (report.status, report.detail, report.stored) == ("empty", "03 NODATA_ERROR", 0)
    assert last_import(engine, "airkorea").status == "done"


def test_the_key_appears_in_no_log_and_no_record(engine, caplog):
    caplog.set_level(logging.DEBUG)
    recorded = Recorded([("waterlevel", {}, [(503, "busy"), "hrfco/waterlevel_1018683.json"])])
    run(engine, "hrfco", recorded, kst(2025, 7, 15, 14, 5), {"stations": ["1018683"]})
    assert "/Ab3%2BcD%2F9xYz%3D%3D/" in str(recorded.seen[0].url)  # it was sent …
    assert "HTTP Request" in caplog.text  # … httpx logged the requests …
    for hidden in (KEY, "Ab3%2BcD%2F9xYz%3D%3D"):
        assert hidden not in caplog.text  # … without the key
    with engine.connect() as conn:
        kept = str([tuple(r) for r in conn.execute(select(import_runs))]) + str(
            [tuple(r) for r in conn.execute(select(connector_status))])
    assert "Ab3" not in kept


# ── KMA ASOS ─────────────────────────────────────────────────────────────────────────────


def test_kma_asos_pages_its_window_and_keeps_quality_flags_as_refusals(engine):
    recorded = Recorded([("getWthrDataList", {"pageNo": "1"}, ["kma/asos_108_p1.json"]),
                         ("getWthrDataList", {"pageNo": "2"}, ["kma/asos_108_p2.json"])])
    now = kst(2025, 7, 16, 10, 0)
    report = run(engine, "kma-asos", recorded, now, {"page_size": 10, "first_lookback_h": 24})

    asked = recorded.seen[0].url.params
    assert (asked["startDt"], asked["startHh"], asked["endDt"], asked["endHh"]) == ("20250715", "10", "20250715", "23")
    assert (asked["stnIds"], asked["dataCd"], asked["dateCd"], asked["dataType"]) == ("108", "ASOS", "HR", "JSON")
    assert (report.status, report.requests) == ("ok", 2)
    temperature = dict(readings(engine, "weather_station", "108", "air_temperature"))
    assert temperature[kst(2025, 7, 15, 15)] == 33.1 and len(temperature) == 13  # 21:00 flagged 1
    assert kst(2025, 7, 15, 15) not in dict(readings(engine, "weather_station", "108", "relative_humidity"))
    assert readings(engine, "weather_station", "108", "rainfall") == [
        (kst(2025, 7, 15, 18), 4.5), (kst(2025, 7, 15, 19), 12.0), (kst(2025, 7, 15, 20), 0.5)]
    reasons = letters(engine, "kma-asos")
    assert any("KMA quality flag 9: missing" in r for r in reasons)
    assert any("KMA quality flag 1: erroneous" in r for r in reasons)

    # later that day the service has nothing newer (it serves up to the day before): no request at all
    idle = run(engine, "kma-asos", Recorded([]), now + timedelta(hours=5))
    assert (idle.status, idle.requests, idle.detail) == ("ok", 0, "up to date: nothing newer to ask for yet")

    # two days on: the window starts after the newest stored hour; the service has no data
    later = Recorded([("getWthrDataList", {}, ["kma/nodata.json"])])
    empty = run(engine, "kma-asos", later, kst(2025, 7, 17, 5, 0))
    asked = later.seen[0].url.params
    assert (asked["startDt"], asked["startHh"], asked["endDt"], asked["endHh"]) == ("20250716", "00", "20250716", "23")
    assert (empty.status, empty.detail) == ("empty", "03 NO_DATA")


def test_kma_per_second_limit_is_retried_with_growing_back_off(engine):
    recorded = Recorded([("getWthrDataList", {}, ["kma/per_second_limit.xml", "kma/per_second_limit.xml",
                                                  "kma/nodata.json"])])
    feed = feeds({"kma-asos": {"backoff_s": 1.5}})["kma-asos"]
    slept = []

    async def sleep(seconds):
        slept.append(seconds)
    report = asyncio.run(run_feed(feed, engine, Pipeline(engine), key=KEY, transport=recorded.transport(),
                                  now=kst(2025, 7, 16, 10), sleep=sleep))
    assert (report.status, report.requests, report.retries) == ("empty", 3, 2)
    assert [s for s in slept if s >= 1] == [1.5, 3.0]  # back-off doubles (rate-limit waits are shorter)


def test_kma_refused_key_from_the_portal_gateway(engine):
    report = run(engine, "kma-asos", Recorded([("getWthrDataList", {}, ["kma/key_not_registered.xml"])]),
                 kst(2025, 7, 16, 10))
    assert report.status == "key_refused" and "SERVICE_KEY_IS_NOT_REGISTERED_ERROR" in report.detail


AWS = [("nph-aws2_min", {"tm2": f"2025071514{m}0"}, [f"kma/aws_min_2025071514{m}0.txt"]) for m in range(5)]


def test_kma_aws_snapshots_keep_the_city_stations_and_a_gap_is_closed_snapshot_by_snapshot(engine):
    first = Recorded(AWS)
    report = run(engine, "kma-aws", first, kst(2025, 7, 15, 14, 13), {"first_lookback_h": 0.25})
    assert [r.url.params["tm2"] for r in first.seen] == ["202507151400", "202507151410"]
    assert {(r.url.params["stn"], r.url.params["disp"]) for r in first.seen} == {("0", "1")}
    assert (report.status, report.stations) == ("ok", 4)  # 108, 400, 401, 889; 속초 (90) is not Seoul's
    assert readings(engine, "weather_station", "108", "air_temperature") == [
        (kst(2025, 7, 15, 14), 32.9), (kst(2025, 7, 15, 14, 10), 33.0)]
    # the rain of the hour, taken on the hour only (sums over 3 h must not count a minute twice)
    assert readings(engine, "weather_station", "400", "rainfall") == [(kst(2025, 7, 15, 14), 12.5)]
    assert readings(engine, "weather_station", "889", "relative_humidity") == []  # -99.9: no such sensor
    assert readings(engine, "weather_station", "90", "air_temperature") == []

    later = Recorded(AWS)  # down for half an hour: the three snapshots missed are fetched
    back = run(engine, "kma-aws", later, kst(2025, 7, 15, 14, 43))
    assert [r.url.params["tm2"] for r in later.seen] == ["202507151420", "202507151430", "202507151440"]
    assert len(readings(engine, "weather_station", "108", "air_temperature")) == 5
    assert kst(2025, 7, 15, 14, 20) not in dict(readings(engine, "weather_station", "401", "air_temperature"))
    assert any("401: not a number: 'ERR'" in r for r in letters(engine, "kma-aws"))
    assert back.duplicates == 0


@pytest.mark.parametrize("answer", ["kma/aws_auth_refused.json", (401, "Unauthorized")])
def test_kma_aws_refused_key(engine, answer):
    report = run(engine, "kma-aws", Recorded([("nph-aws2_min", {}, [answer])]), kst(2025, 7, 15, 14, 13))
    assert (report.status, report.requests) == ("key_refused", 1)


# ── HRFCO ────────────────────────────────────────────────────────────────────────────────


def test_hrfco_levels_of_a_gauge_the_db_lacks_provision_it(engine):
    recorded = Recorded([("/1018683/", {}, ["hrfco/waterlevel_1018683.json"]),
                         ("/1099999/", {}, ["hrfco/empty.json"])])
    report = run(engine, "hrfco", recorded, kst(2025, 7, 15, 14, 5), {"stations": ["1018683", "1099999"]})

    assert recorded.seen[0].url.path.endswith("/waterlevel/list/10M/1018683/202507150805/202507151405.json")
    assert report.status == "ok" and "1099999: no records in the window" in report.detail
    levels = readings(engine, "river_gauge", "1018683", "water_level")
    assert len(levels) == 13 and levels[0] == (kst(2025, 7, 15, 12), 2.46)
    assert len(readings(engine, "river_gauge", "1018683", "discharge")) == 12  # one blank fw: not observed
    with engine.connect() as conn:  # a place of its kind, without coordinates until a register gives them
        gauge = conn.execute(select(places).where(places.c.ref == "1018683", places.c.kind == "river_gauge")).one()
    assert gauge.lon is None and "한강홍수통제소" in gauge.source

    # ten minutes on, the window starts after the newest stored reading
    again = Recorded([("waterlevel", {}, ["hrfco/empty.json"])])
    run(engine, "hrfco", again, kst(2025, 7, 15, 14, 15), {"stations": ["1018683"]})
    assert "/1018683/202507151410/202507151415.json" in again.seen[0].url.path


def test_hrfco_refused_key(engine):
    report = run(engine, "hrfco", Recorded([("waterlevel", {}, [(401, "Unauthorized")])]), kst(2025, 7, 15, 14))
    assert (report.status, report.requests) == ("key_refused", 1)


# ── S-DoT ────────────────────────────────────────────────────────────────────────────────

SDOT = [("/1/3/", {}, ["sdot/iotvdata017_p1.json"]), ("/4/6/", {}, ["sdot/iotvdata017_p2.json"]),
        ("/7/9/", {}, ["sdot/iotvdata017_p3.json"])]


def test_sdot_pages_back_through_the_newest_first_list(engine):
    recorded = Recorded(SDOT)
    report = run(engine, "sdot", recorded, kst(2025, 7, 15, 14, 20), {"page_size": 3})
    assert [r.url.path.split("/json/")[1] for r in recorded.seen] == [
        "IotVdata017/1/3/", "IotVdata017/4/6/", "IotVdata017/7/9/"]
    assert (report.status, report.stations) == ("ok", 3)
    assert readings(engine, "sdot_sensor", "V02Q1940612", "air_temperature")[-1] == (kst(2025, 7, 15, 14), 31.2)
    assert readings(engine, "sdot_sensor", "V02Q1940955", "air_temperature") == [
        (kst(2025, 7, 15, 12), 30.8), (kst(2025, 7, 15, 13), 77.0), (kst(2025, 7, 15, 14), 32.0)]
    with engine.connect() as conn:  # a broken sensor's 77 °C is stored, as ingest stores everything: flagged bad
        flags = [q for q, in conn.execute(select(observations.c.result_quality).where(observations.c.result == 77.0))]
    assert flags == ["bad"]
    assert any("not a number: 'ERR'" in r for r in letters(engine, "sdot"))


def test_sdot_stops_paging_at_what_is_stored(engine):
    run(engine, "sdot", Recorded(SDOT), kst(2025, 7, 15, 14, 20), {"page_size": 3})
    recorded = Recorded(SDOT)
    again = run(engine, "sdot", recorded, kst(2025, 7, 15, 14, 40), {"page_size": 3})
    assert (again.requests, again.stored) == (1, 0)


def test_a_sensor_clock_running_ahead_does_not_move_its_window_into_the_future(engine):
    from haechi.store.schema import connector_stations

    now = kst(2025, 7, 15, 13, 30)  # the 14:00 rows are half an hour in the future
    run(engine, "sdot", Recorded(SDOT), now, {"page_size": 3})
    with engine.connect() as conn:
        assert max(t for t, in conn.execute(select(connector_stations.c.last_time))).astimezone(UTC) == now
        future = [q for q, in conn.execute(select(observations.c.result_quality).where(
            observations.c.phenomenon_time == kst(2025, 7, 15, 14)))]
    assert future and set(future) == {"bad"}  # stored, flagged


@pytest.mark.parametrize(("answers", "status", "words"), [
    (["sdot/info200.json"], "empty", "INFO-200 해당하는 데이터가 없습니다."),
    (["sdot/info100.json"], "key_refused", "INFO-100 인증키가 유효하지 않습니다"),
    (["sdot/error500.json"], "failed", "ERROR-500 서버 오류입니다"),
])
def test_sdot_error_and_empty_pages(engine, answers, status, words):
    report = run(engine, "sdot", Recorded([("IotVdata017", {}, answers)]), kst(2025, 7, 15, 14, 20))
    assert report.status == status and words in report.detail
    assert report.requests == (4 if status == "failed" else 1)


def test_sdot_server_error_then_data_is_retried(engine):
    recorded = Recorded([("/1/1000/", {}, ["sdot/error500.json", "sdot/iotvdata017_p1.json"])])
    report = run(engine, "sdot", recorded, kst(2025, 7, 15, 14, 20))
    assert (report.status, report.retries, report.stored) == ("ok", 1, 9)


@pytest.mark.parametrize(("name", "answer", "words"), [
    ("hrfco", '{"result": "maintenance"}', "answered JSON without its content list"),
    ("airkorea", "<html><body>서비스 점검 중</body></html>", "answered XML without a result code"),
    ("airkorea", "<html><body><p>점검</body></html>", "answered XML that does not parse"),
    ("sdot", "Service Temporarily Unavailable", "answered something that is not JSON"),
])
def test_an_answer_unlike_its_guide_fails_with_the_reason_and_is_not_retried(engine, name, answer, words):
    report = run(engine, name, Recorded([("/", {}, [answer])]), kst(2025, 7, 15, 14, 20), {"stations": ["1018683"]}
                 if name == "hrfco" else None)
    assert (report.status, report.requests) == ("failed", 1) and words in report.detail
    assert last_import(engine, name).status == "failed"


def test_requests_keep_to_the_api_rate():
    from haechi.imports.connectors.client import ApiClient, Limits

    clock, slept = [100.0], []  # a clock that moves only when the client sleeps

    async def sleep(seconds):
        slept.append(seconds)
        clock[0] += seconds

    async def three():
        client = ApiClient(Limits(requests_per_s=2, attempts=1, backoff_s=1, timeout_s=5), KEY,
                           Recorded([("/", {}, ["hrfco/empty.json"])]).transport(), sleep, lambda: clock[0])
        for _ in range(3):
            await client.get("https://api.hrfco.go.kr/x.json", lambda response: response.status_code)
        await client.close()
    asyncio.run(three())
    assert slept == [0.5, 0.5]  # each request waits its turn: two a second


# ── keys, the engine's schedule ──────────────────────────────────────────────────────────


def test_without_a_key_a_connector_is_disabled_and_says_which_variable(engine):
    report = run(engine, "airkorea", Recorded([]), kst(2025, 7, 15, 14), key="")
    assert report.status == "disabled"
    assert report.detail == "disabled: HAECHI_AIRKOREA_KEY or HAECHI_DATA_GO_KR_KEY is not set"


def test_due_connectors():
    now = datetime(2025, 7, 15, tzinfo=UTC)
    last = {"a": now - timedelta(minutes=59), "b": now - timedelta(hours=1)}
    assert due(last, {"a": 3600, "b": 3600, "c": 600}, now) == ["b", "c"]


def test_the_engine_runs_due_connectors_with_a_key_and_publishes_what_it_stored(engine, monkeypatch):
    from haechi.core.settings import Settings
    from haechi.model.events import OBSERVATION_STORED
    from haechi.runtime.part import Context

    for variable in ("HAECHI_AIRKOREA_KEY", "HAECHI_DATA_GO_KR_KEY", "HAECHI_KMA_KEY", "HAECHI_KMA_APIHUB_KEY",
                     "HAECHI_SEOUL_OPENAPI_KEY"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HAECHI_HRFCO_KEY", KEY)
    now = kst(2025, 7, 15, 14, 5)
    context = Context.of(engine, Settings(), now=lambda: now)
    context.pipeline.now = lambda: now
    recorded = Recorded([("/1018683/", {}, ["hrfco/waterlevel_1018683.json"]),
                         ("waterlevel", {}, ["hrfco/empty.json"])])
    context.options["connector_transport"] = recorded.transport()
    context.options["connector_sleep"] = _no_wait
    published = []

    async def seen(event):
        published.append(event)

    async def twice():
        context.bus.subscribe(OBSERVATION_STORED, seen)
        await run_due(context)
        await run_due(context)  # not due again yet
    asyncio.run(twice())
    assert len(recorded.seen) == 4  # the four gauges of connectors.toml, once
    assert len(readings(engine, "river_gauge", "1018683", "water_level")) == 13
    assert sum(len(e.data["observations"]) for e in published) == 25


async def _no_wait(seconds):
    return None


def test_fixtures_are_in_the_documented_envelopes():
    """The recorded answers keep each publisher's envelope (a guard against editing them by hand)."""
    air = orjson.loads((RECORDED / "airkorea/ctprvn_1400_p1.json").read_bytes())["response"]
    assert air["header"]["resultCode"] == "00" and isinstance(air["body"]["items"], list)
    kma = orjson.loads((RECORDED / "kma/asos_108_p1.json").read_bytes())["response"]
    assert isinstance(kma["body"]["items"]["item"], list)
    sdot = orjson.loads((RECORDED / "sdot/iotvdata017_p1.json").read_bytes())["IotVdata017"]
    assert sdot["RESULT"]["CODE"] == "INFO-000" and "list_total_count" in sdot
