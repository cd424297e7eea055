"""Every sensor warns as a pack station does, however it was registered (issue 16).

Through the API end to end, on SQLite and PostgreSQL: a Thing created over SensorThings, a place
saved over ``/api/v1/places``, each in Jongno-gu, report PM10 over HTTP per the official rule
(주의보: hourly mean ≥ 150 µg/m³ for 2 hours); each gets Jongno's fine-dust advisory with its CAP
alert. A sensor with no Location, or outside Seoul, still warns: the warning is stored, shown with
the reason it has no district, and kept in the dead letters; no request gets a 5xx.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from haechi.alerts.cap import from_xml, validate
from haechi.store import deadletters

STA = "/sta/v1.1"
JONGNO = "11110"
JONGNO_OFFICE = (126.9793, 37.5735)  # 종로구청
SUWON = (127.0286, 37.2636)  # Gyeonggi-do, outside every district of the Seoul pack
T0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=4)
PM10 = [155.0, 160.0, 170.0]  # hourly means over the 150 µg/m³ advisory level for 2 hours


def auth(tokens: dict[str, str], role: str = "device") -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens[role]}"}


def pm10_thing(name: str, where: tuple[float, float] | None) -> dict[str, Any]:
    thing: dict[str, Any] = {"name": name, "description": f"{name} 미세먼지 측정기", "Datastreams": [{
        "name": f"{name} PM10", "description": "hourly mean PM10",
        "observationType": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement",
        "unitOfMeasurement": {"name": "microgram per cubic metre", "symbol": "ug/m3", "definition": "ucum:ug/m3"},
        "Sensor": {"name": "beta gauge", "description": "beta attenuation", "encodingType": "text/html",
                   "metadata": "https://example.org/beta"},
        "ObservedProperty": {"@iot.id": 0}}]}
    if where is not None:
        thing["Locations"] = [{"name": name, "description": "mast", "encodingType": "application/geo+json",
                               "location": {"type": "Point", "coordinates": list(where)}}]
    return thing


def create_sta_sensor(client: TestClient, tokens, name: str, where: tuple[float, float] | None) -> int:
    """A Thing with a PM10 Datastream, as an integrator creates it; returns the Datastream's id."""
    found = client.get(f"{STA}/ObservedProperties", params={"$filter": "name eq 'PM10 mass concentration'"})
    [pm10] = found.json()["value"]
    body = pm10_thing(name, where)
    body["Datastreams"][0]["ObservedProperty"] = {"@iot.id": pm10["@iot.id"]}
    answer = client.post(f"{STA}/Things", json=body, headers=auth(tokens))
    assert answer.status_code == 201, answer.text
    streams = client.get(f"{STA}/Things({answer.json()['@iot.id']})/Datastreams").json()["value"]
    return streams[0]["@iot.id"]


def report_over_sta(client: TestClient, tokens, stream: int) -> None:
    for hour, value in enumerate(PM10):
        answer = client.post(f"{STA}/Datastreams({stream})/Observations", headers=auth(tokens), json={
            "phenomenonTime": (T0 + timedelta(hours=hour)).isoformat(), "result": value})
        assert answer.status_code == 201, answer.text


def report_over_http(client: TestClient, tokens, stream: int) -> None:
    for hour, value in enumerate(PM10):
        answer = client.post("/api/v1/observations", headers=auth(tokens), json=[{
            "datastream_id": stream, "result": value, "phenomenon_time": (T0 + timedelta(hours=hour)).isoformat()}])
        assert answer.status_code == 200, answer.text


def warning_in(client: TestClient, area_key: str, *, wait_s: float = 20) -> dict[str, Any]:
    """The fine-dust warning in force in this area, once the engine has recorded it."""
    return eventually(lambda: next((w for w in client.get("/api/v1/warnings").json()
                                    if w["hazard"] == "fine_dust" and w["area_key"] == area_key), None), wait_s)


def eventually(probe: Callable[[], Any], wait_s: float) -> Any:
    deadline = time.monotonic() + wait_s
    while (found := probe()) is None:
        assert time.monotonic() < deadline, "the engine recorded nothing"
        time.sleep(0.1)
    return found


def assert_jongno_advisory(client: TestClient, warning: dict[str, Any]) -> None:
    """Jongno's PM10 advisory, as a pack station's would be, announced by a valid CAP alert."""
    assert (warning["level"], warning["crisis_level"]) == ("advisory", "attention")
    assert warning["area_key"] == f"district:{JONGNO}" and warning["area_code"] == JONGNO
    assert warning["unplaced"] is None and warning["districts"] == [JONGNO]
    assert warning["criterion"]["value"] == 150 and warning["value"] >= 150
    [alert] = client.get("/api/v1/alerts", params={"area": JONGNO, "hazard": "fine_dust"}).json()
    xml = client.get(f"/api/v1/alerts/{alert['id']}.xml")
    validate(xml.content)
    cap = from_xml(xml.content)
    codes = {g.value for info in cap.infos for area in info.areas for g in area.geocodes}
    assert f"{JONGNO}00000" in codes
    assert "종로구" in cap.infos[0].areas[0].area_desc


def test_a_thing_created_over_sensorthings_in_jongno_issues_jongnos_advisory(seoul_api):
    client, tokens, _ = seoul_api
    stream = create_sta_sensor(client, tokens, "Jongno rooftop", JONGNO_OFFICE)
    got = client.get(f"{STA}/Datastreams({stream})").json()
    assert got["properties"]["dong_code"].startswith(JONGNO)  # its dong, from point in polygon
    report_over_sta(client, tokens, stream)
    assert_jongno_advisory(client, warning_in(client, f"district:{JONGNO}"))


def test_a_location_linked_later_places_the_thing_before_it_warns(seoul_api):
    client, tokens, _ = seoul_api
    stream = create_sta_sensor(client, tokens, "Jongno mast", None)
    thing = client.get(f"{STA}/Datastreams({stream})/Thing").json()["@iot.id"]
    answer = client.post(f"{STA}/Things({thing})/Locations", headers=auth(tokens), json={
        "name": "mast", "description": "on the roof", "encodingType": "application/geo+json",
        "location": {"type": "Point", "coordinates": list(JONGNO_OFFICE)}})
    assert answer.status_code == 201, answer.text
    report_over_sta(client, tokens, stream)
    assert_jongno_advisory(client, warning_in(client, f"district:{JONGNO}"))


def test_an_air_station_saved_over_the_places_api_gets_its_datastreams_and_warns(seoul_api):
    client, tokens, _ = seoul_api
    answer = client.post("/api/v1/places", headers=auth(tokens, "operator"), json={"places": [{
        "kind": "air_station", "ref": "client-jongno-1", "name_ko": "종로 시민 측정소",
        "name_en": "Jongno citizens' station", "lon": JONGNO_OFFICE[0], "lat": JONGNO_OFFICE[1]}]})
    assert answer.status_code == 200, answer.text
    [place] = [p for p in client.get("/api/v1/places", params={"kind": "air_station", "limit": 1000}).json()
               if p["ref"] == "client-jongno-1"]
    assert place["area_code"].startswith(JONGNO) and len(place["area_code"]) > 5  # its dong
    [thing] = client.get(f"{STA}/Things", params={"$filter": "name eq 'Jongno citizens'' station'"}).json()["value"]
    streams = client.get(f"{STA}/Things({thing['@iot.id']})/Datastreams").json()["value"]
    pm10 = next(s["@iot.id"] for s in streams if s["unitOfMeasurement"]["symbol"] == "ug/m3"
                and "PM10" in s["name"])
    report_over_http(client, tokens, pm10)
    assert_jongno_advisory(client, warning_in(client, f"district:{JONGNO}"))


@pytest.mark.parametrize(("where", "reason"), [(None, "no_location"), (SUWON, "outside_areas")])
def test_a_warning_no_district_holds_is_kept_shown_and_dead_lettered(seoul_api, where, reason):
    client, tokens, engine = seoul_api
    stream = create_sta_sensor(client, tokens, "Wandering sensor", where)
    report_over_http(client, tokens, stream)  # SensorThings wants a FeatureOfInterest where no Location is
    warning = warning_in(client, f"stream:{stream}")
    assert warning["area_key"] == f"stream:{stream}" and warning["area_code"] is None
    assert (warning["level"], warning["status"]) == ("advisory", "active")
    assert warning["unplaced"]["code"] == reason and warning["unplaced"]["ko"] and warning["unplaced"]["en"]
    assert "Wandering sensor" in warning["area_desc"]["en-US"]
    one = client.get(f"/api/v1/warnings/{warning['id']}")
    assert one.status_code == 200 and one.json()["unplaced"]["code"] == reason
    with engine.connect() as conn:
        [letter] = deadletters.pending(conn, source=f"warning:stream:{stream}")
    assert letter["reason"].startswith(f"cannot place warning area stream:{stream}")
    assert f'"warning_id":{warning["id"]}' in letter["payload"]
    # announced to the operators, to no district: a Restricted CAP alert with its area described, no
    # geocode; never in what citizens and aggregators read
    alerts = client.get("/api/v1/alerts", params={"hazard": "fine_dust"}, headers=auth(tokens, "operator")).json()
    [mine] = [a for a in alerts if not a.get("area_codes")]
    cap = from_xml(client.get(f"/api/v1/alerts/{mine['id']}.xml", headers=auth(tokens, "operator")).content)
    assert cap.scope == "Restricted" and "Operators only" in cap.restriction
    assert mine["id"] not in [a["id"] for a in client.get("/api/v1/alerts", params={"hazard": "fine_dust"}).json()]
    assert mine["identifier"] not in client.get("/alerts/aggregators.atom").text


def test_an_air_station_imported_from_a_register_warns_as_a_pack_station(seoul_api):
    client, tokens, _ = seoul_api
    mapping = ('target = "places"\nkind = "air_station"\n'
               '[columns]\nref = "번호"\nname_ko = "측정소명"\nlon = "경도"\nlat = "위도"\n')
    register = f"번호,측정소명,경도,위도\nREG-1,종로 등록 측정소,{JONGNO_OFFICE[0]},{JONGNO_OFFICE[1]}\n".encode()
    answer = client.post(f"/api/v1/imports/mapped?filename=stations.csv&mapping={quote(mapping)}", content=register,
                         headers=auth(tokens, "operator"))
    assert answer.status_code == 201, answer.text
    [place] = [p for p in client.get("/api/v1/places", params={"kind": "air_station", "limit": 1000}).json()
               if p["ref"] == "REG-1"]
    assert place["area_code"].startswith(JONGNO) and len(place["area_code"]) > 5
    [thing] = client.get(f"{STA}/Things", params={"$filter": "name eq '종로 등록 측정소'"}).json()["value"]
    streams = client.get(f"{STA}/Things({thing['@iot.id']})/Datastreams").json()["value"]
    report_over_http(client, tokens, next(s["@iot.id"] for s in streams if "PM10" in s["name"]))
    assert_jongno_advisory(client, warning_in(client, f"district:{JONGNO}"))
