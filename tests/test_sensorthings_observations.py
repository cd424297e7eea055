"""Observations through the SensorThings API go through the ingest pipeline: QC, once only, dead letters.

On SQLite and PostgreSQL: quality flags from the observed-property catalogue, idempotent resends,
dead letters for every refusal, live state and bus events, FeaturesOfInterest as 18-088 §10.2
asks, and the CreateObservations dataArray request (§13.3).
"""

from __future__ import annotations

import asyncio

import pytest
from test_sensorthings_support import BASE, STA, assert_problem, at, build_network

from haechi.store import deadletters


@pytest.fixture
def net(engine):
    return build_network(engine)


def count(net, path: str = "/Observations", **params) -> int:
    return net.get(path, **{"$count": "true", "$top": "0", **params})["@iot.count"]


def letters(net) -> list[dict]:
    with net.engine.connect() as conn:
        return deadletters.pending(conn, source="sta", limit=1000)


def observation(stream: int, minutes: int, result, **more) -> dict:
    return {"phenomenonTime": at(minutes), "result": result, "Datastream": {"@iot.id": stream}, **more}


def test_an_observation_is_flagged_by_quality_control(net):
    bad = net.post("/Observations", observation(1, 300, 99999.0)).json()
    assert bad["resultQuality"]["flag"] == "bad" and "out of range" in bad["resultQuality"]["reasons"][0]
    spike = net.post("/Datastreams(3)/Observations", {"phenomenonTime": at(50), "result": 25.0}).json()
    assert spike["resultQuality"]["flag"] == "suspect" and spike["resultQuality"]["reasons"][0].startswith("spike")
    assert count(net, **{"$filter": "resultQuality/flag ne 'good'"}) == 2


def test_a_resend_is_stored_once_and_answers_with_the_same_entity(net):
    first = net.post("/Observations", observation(1, 500, 7.5))
    again = net.post("/Datastreams(1)/Observations", {"phenomenonTime": at(500), "result": 7.5})
    assert first.headers["location"] == again.headers["location"] == f"{BASE}/Observations(21)"
    assert count(net, "/Datastreams(1)/Observations") == 13


def test_stored_observations_reach_the_live_state_and_the_bus(net):
    seen = []

    async def listen(event):
        seen.append(event)

    app = net.client.app
    app.state.bus.subscribe("observation.>", listen)
    net.post("/Observations", observation(3, 60, 7.0))
    assert app.state.pipeline.state.get(3).result == 7.0
    [event] = seen
    assert event.data["source"] == "sta" and event.data["observations"][0]["datastream_id"] == 3


@pytest.mark.parametrize(("body", "field", "reason"), [
    (observation(99, 0, 1.0), "body.Datastream", "unknown datastream 99"),
    (observation(99999999999, 0, 1.0), "body.Datastream", "no Datastream with id 99999999999"),
    (observation(1, 0, "high"), "body.result", "must be a number"),
    (observation(1, 0, True), "body.result", "must be a number"),
    ({"phenomenonTime": at(0), "Datastream": {"@iot.id": 1}}, "body.result", "needs its result"),
    ({"phenomenonTime": at(0), "result": 1.0}, "body.Datastream", "needs its Datastream"),
    (observation(1, 0, 1.0, phenomenonTime="2020-08-06T05:00:00Z/2020-08-06T06:00:00Z"),
     "body.phenomenonTime", "intervals"),
    (observation(1, 0, 1.0, phenomenonTime="2020-08-06T05:00:00"), "body.phenomenonTime", "UTC offset"),
    (observation(1, 0, 1.0, phenomenonTime="0001-01-01T00:00:00+09:00"), "body.phenomenonTime", "1–9999"),
    (observation(1, 0, 1.0, resultQuality="good"), "body.resultQuality", "quality control"),
    (observation(1, 0, 1.0, validTime="2020-08-06T05:00:00Z"), "body.validTime", "not stored"),
    (observation(1, 0, 1.0, parameters=[1]), "body.parameters", "object"),
    (observation(1, 0, 1.0, colour="red"), "body.colour", "no property"),
    (observation(1, 0, 1.0, FeatureOfInterest={"@iot.id": 99}), "body.FeatureOfInterest", "no FeatureOfInterest"),
    (observation(1, 0, 1.0, FeatureOfInterest={"name": "no feature"}), "body.FeatureOfInterest.feature", "needs"),
])
def test_refused_observations_are_400_and_kept_as_dead_letters(net, body, field, reason):
    before = count(net)
    problem = assert_problem(net.client.post(f"{STA}/Observations", json=body, headers=net.auth()), 400, field)
    assert reason in problem["detail"]
    [letter] = letters(net)
    assert reason in letter["reason"] and letter["source"] == "sta"
    assert count(net) == before


def test_malformed_json_is_kept_raw(net):
    response = net.client.post(f"{STA}/Datastreams(1)/Observations", content=b'{"result": 1,',
                               headers={**net.auth(), "Content-Type": "application/json"})
    assert_problem(response, 400, "body")
    assert letters(net)[0]["payload"] == '{"result": 1,'


def test_a_datastream_in_the_body_must_agree_with_the_path(net):
    response = net.client.post(f"{STA}/Datastreams(1)/Observations", json=observation(3, 0, 1.0), headers=net.auth())
    assert_problem(response, 400, "body.Datastream")


def test_the_server_time_stands_in_for_a_missing_phenomenon_time(net):
    created = net.post("/Datastreams(2)/Observations", {"result": 1.5}).json()
    assert created["phenomenonTime"].startswith("20") and created["phenomenonTime"] > "2024"


def test_features_of_interest_given_inline_or_by_id(net):
    inline = {"name": "pier 3", "description": "south pier", "encodingType": "application/geo+json",
              "feature": {"type": "Point", "coordinates": [126.96, 37.51]}}
    first = net.post("/Observations", observation(1, 400, 7.0, FeatureOfInterest=inline)).json()
    second = net.post("/Observations", observation(1, 410, 7.1, FeatureOfInterest=inline)).json()
    feature = net.get(f"/Observations({first['@iot.id']})/FeatureOfInterest")
    assert feature["name"] == "pier 3"
    assert net.get(f"/Observations({second['@iot.id']})/FeatureOfInterest")["@iot.id"] == feature["@iot.id"]
    linked = net.post("/Observations", observation(3, 400, 7.0, FeatureOfInterest={"@iot.id": feature["@iot.id"]}))
    assert net.get(f"/Observations({linked.json()['@iot.id']})/FeatureOfInterest")["name"] == "pier 3"
    assert net.post(f"/FeaturesOfInterest({feature['@iot.id']})/Observations",
                    {"phenomenonTime": at(420), "result": 7.2, "Datastream": {"@iot.id": 1}}).status_code == 201
    assert count(net, f"/FeaturesOfInterest({feature['@iot.id']})/Observations") == 4


def test_a_thing_without_location_needs_a_feature_of_interest(net):
    net.post("/Things", {"name": "drifting buoy", "Datastreams": [{
        "name": "buoy level", "unitOfMeasurement": {"name": "metre", "symbol": "m", "definition": "ucum:m"},
        "observationType": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement",
        "Sensor": {"@iot.id": 1}, "ObservedProperty": {"@iot.id": net.property_ids["water_level"]}}]})
    response = net.client.post(f"{STA}/Datastreams(4)/Observations", json={"phenomenonTime": at(0), "result": 1.0},
                               headers=net.auth())
    assert "no Location" in assert_problem(response, 400, "body.FeatureOfInterest")["detail"]


def test_observations_of_a_deleted_datastream_are_refused_not_failed(net):
    net.post("/Observations", observation(3, 100, 7.0))  # the pipeline now knows stream 3
    assert net.client.delete(f"{STA}/Datastreams(3)", headers=net.auth("operator")).status_code == 200
    response = net.client.post(f"{STA}/Observations", json=observation(3, 110, 7.0), headers=net.auth())
    assert_problem(response, 400, "body.Datastream")


# ── CreateObservations (18-088 §13.3) ─────────────────────────────────────────────────────


def test_create_observations_answers_a_self_link_or_error_per_row(net):
    body = [
        {"Datastream": {"@iot.id": 1}, "components": ["phenomenonTime", "result", "FeatureOfInterest/id"],
         "dataArray@iot.count": 4,
         "dataArray": [[at(200), 9.2, 1], [at(210), "dry", 1], [at(220), 9.3, 99], [at(230), 9.4, None]]},
        {"Datastream": {"@iot.id": 99}, "components": ["result", "phenomenonTime"], "dataArray": [[1.0, at(0)]]},
        {"Datastream": {"@iot.id": 2}, "components": ["result", "phenomenonTime", "resultTime", "parameters"],
         "dataArray": [[4.0, at(300), at(301), {"gauge": "tipping bucket"}], [4.0, at(300), None, None]]},
    ]
    links = net.post("/CreateObservations", body).json()
    assert links[0] == f"{BASE}/Observations(21)"
    assert links[1:3] == ["error", "error"] and links[3] == f"{BASE}/Observations(22)" and links[4] == "error"
    assert links[5] == links[6] == f"{BASE}/Observations(23)"  # a repeated row is stored once
    stored = net.get("/Observations(23)")
    assert stored["resultTime"] == at(301) and stored["parameters"] == {"gauge": "tipping bucket"}
    assert net.get("/Observations(22)/FeatureOfInterest")["name"] == "한강대교"
    assert {letter["reason"].split(": ", 1)[0] for letter in letters(net)} == {
        "body.0.dataArray.1.result", "FeatureOfInterest", "datastream_id"}


def test_create_observations_through_the_stock_form_of_times(net):
    body = [{"Datastream": {"@iot.id": 3}, "components": ["phenomenonTime", "result"],
             "dataArray": [["2020-08-06T14:50:00+0900", 6.9], ["2020-08-06T06:00:00.000Z", 7.0]]}]
    links = net.post("/CreateObservations", body).json()
    assert [net.get(link.removeprefix(BASE))["phenomenonTime"] for link in links] == [at(50), at(60)]


@pytest.mark.parametrize(("body", "field"), [
    ({"Datastream": {"@iot.id": 1}}, "body"),
    ([{"Datastream": 1, "components": ["result"], "dataArray": []}], "body.0.Datastream"),
    ([{"Datastream": {"@iot.id": 1}, "components": ["id", "result"], "dataArray": []}], "body.0.components"),
    ([{"Datastream": {"@iot.id": 1}, "components": ["phenomenonTime"], "dataArray": []}], "body.0.components"),
    ([{"Datastream": {"@iot.id": 1}, "components": ["result"], "dataArray": {}}], "body.0.dataArray"),
    ([{"Datastream": {"@iot.id": 1}, "components": ["result"], "dataArray": [], "extra": 1}], "body.0.extra"),
])
def test_a_malformed_create_observations_body_is_refused_whole(net, body, field):
    response = net.client.post(f"{STA}/CreateObservations", json=body, headers=net.auth())
    assert_problem(response, 400, field)
    assert len(letters(net)) == 1 and count(net) == 20


def test_rows_of_the_wrong_length_are_errors(net):
    body = [{"Datastream": {"@iot.id": 1}, "components": ["phenomenonTime", "result"],
             "dataArray": [[at(300)], [at(310), 9.0, "extra"], [at(320), 9.0]]}]
    assert net.post("/CreateObservations", body).json()[:2] == ["error", "error"]


def test_create_observations_needs_a_writer(net):
    assert_problem(net.client.post(f"{STA}/CreateObservations", json=[]), 401)
    assert_problem(net.client.post(f"{STA}/CreateObservations", json=[], headers=net.auth("citizen")), 403)
    assert net.post("/CreateObservations", []).json() == []


def test_concurrent_clients_store_each_reading_once(net):
    """Two devices sending the same batch at once: the idempotency key holds across requests."""
    body = [{"Datastream": {"@iot.id": 2}, "components": ["phenomenonTime", "result"],
             "dataArray": [[at(600 + i), float(i)] for i in range(50)]}]

    async def send_twice():
        import httpx

        transport = httpx.ASGITransport(app=net.client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await asyncio.gather(*(client.post(f"{STA}/CreateObservations", json=body, headers=net.auth())
                                          for _ in range(2)))

    first, second = asyncio.run(send_twice())
    assert first.json() == second.json()
    assert count(net, "/Datastreams(2)/Observations") == 53


def test_sub_second_times_keep_their_fraction(net):
    net.post("/Datastreams(3)/Observations", {"phenomenonTime": "2020-08-06T05:41:00.250Z", "result": 6.8})
    [found] = net.get("/Observations", **{"$filter": "fractionalseconds(phenomenonTime) eq 0.25"})["value"]
    assert found["phenomenonTime"] == "2020-08-06T05:41:00.250000Z"
