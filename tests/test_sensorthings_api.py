"""The SensorThings API on SQLite and PostgreSQL: resource paths, every query option, writes, errors."""

from __future__ import annotations

import json

import pytest
from test_sensorthings_support import BASE, STA, assert_problem, at, build_network, point


@pytest.fixture
def net(engine):
    return build_network(engine)


# ── 18-088 §9.1–9.2: the service root, entities, navigation, properties ─────────────────────


def test_the_service_root_lists_every_entity_set_and_the_conformance_classes(net):
    root = net.get("")
    assert [s["name"] for s in root["value"]] == [
        "Things", "Locations", "HistoricalLocations", "Sensors", "ObservedProperties", "Datastreams",
        "Observations", "FeaturesOfInterest"]
    assert root["value"][0]["url"] == f"{BASE}/Things"
    assert ("http://www.opengis.net/spec/iot_sensing/1.1/req/data-array/data-array"
            in root["serverSettings"]["conformance"])


def test_an_entity_carries_its_id_self_link_and_navigation_links(net):
    thing = net.get("/Things(1)")
    assert thing["@iot.id"] == 1 and thing["@iot.selfLink"] == f"{BASE}/Things(1)"
    assert thing["properties"] == {"river": "Han", "grade": 1}
    for nav in ("Locations", "HistoricalLocations", "Datastreams"):
        assert thing[f"{nav}@iot.navigationLink"] == f"{BASE}/Things(1)/{nav}"


def test_datastreams_read_with_unit_type_and_the_span_of_their_observations(net):
    stream = net.get("/Datastreams(1)")
    assert stream["unitOfMeasurement"] == {"name": "metre", "symbol": "m", "definition": "ucum:m"}
    assert stream["observationType"].endswith("OM_Measurement")
    assert stream["phenomenonTime"] == f"{at(0)}/{at(110)}"


def test_observations_read_with_utc_times_result_and_quality(net):
    observation = net.get("/Observations(1)")
    assert observation["phenomenonTime"] == "2020-08-06T05:00:00Z"
    assert observation["result"] == 8.0
    assert observation["resultQuality"] == {"flag": "good", "reasons": []}
    assert observation["resultTime"] is None


def test_navigation_reaches_related_entities_both_ways(net):
    assert [d["name"] for d in net.get("/Things(1)/Datastreams")["value"]] == [
        "Hangang water level", "Hangang rainfall"]
    assert net.get("/Datastreams(3)/Thing")["name"] == "Jamsu Bridge"
    assert net.get("/Observations(5)/Datastream")["@iot.id"] == 1
    assert net.get("/Datastreams(1)/Observations", **{"$count": "true"})["@iot.count"] == 12
    assert net.get("/Things(1)/Locations")["value"][0]["location"] == point(126.9567, 37.5144)
    assert net.get("/Locations(2)/Things")["value"][0]["name"] == "Jamsu Bridge"
    assert net.get("/Datastreams(1)/Thing/Locations")["value"][0]["name"] == "한강대교"
    assert net.get("/Things(1)/Datastreams(2)/ObservedProperty")["name"] == "Rainfall"
    assert net.get("/Sensors(1)/Datastreams")["value"][0]["@iot.id"] == 1
    assert net.get("/ObservedProperties(1)/Datastreams")["value"][0]["name"] == "Hangang water level"


def test_creating_a_thing_with_locations_records_a_historical_location(net):
    [history] = net.get("/Things(1)/HistoricalLocations")["value"]
    assert net.get(f"/HistoricalLocations({history['@iot.id']})/Locations")["value"][0]["name"] == "한강대교"
    assert net.get(f"/HistoricalLocations({history['@iot.id']})/Thing")["name"] == "Hangang Bridge"


def test_properties_read_alone_and_as_bare_values(net):
    assert net.get("/Things(1)/name") == {"name": "Hangang Bridge"}
    response = net.client.get(f"{STA}/Things(1)/name/$value")
    assert response.status_code == 200 and response.text == "Hangang Bridge"
    assert response.headers["content-type"].startswith("text/plain")
    assert net.client.get(f"{STA}/Observations(1)/result/$value").text == "8.0"
    assert net.client.get(f"{STA}/Observations(1)/resultTime/$value").status_code == 204
    assert net.get("/Datastreams(1)/unitOfMeasurement")["unitOfMeasurement"]["symbol"] == "m"


def test_ref_lists_self_links_only(net):
    refs = net.get("/Things(1)/Datastreams/$ref")["value"]
    assert refs == [{"@iot.selfLink": f"{BASE}/Datastreams(1)"}, {"@iot.selfLink": f"{BASE}/Datastreams(2)"}]
    assert net.get("/Datastreams(3)/Thing/$ref") == {"@iot.selfLink": f"{BASE}/Things(2)"}


def test_a_generated_feature_of_interest_is_shared_by_observations_at_one_place(net):
    feature = net.get("/Observations(1)/FeatureOfInterest")
    assert feature["feature"] == point(126.9567, 37.5144) and feature["name"] == "한강대교"
    assert net.get(f"/FeaturesOfInterest({feature['@iot.id']})/Observations",
                   **{"$count": "true"})["@iot.count"] == 15  # both Hangang streams
    assert len(net.get("/FeaturesOfInterest")["value"]) == 2


# ── 18-088 §9.3: query options ────────────────────────────────────────────────────────────


def values(net, path: str, **params) -> list:
    return net.get(path, **params)["value"]


def ids(net, path: str, **params) -> list[int]:
    return [e["@iot.id"] for e in values(net, path, **params)]


def results(net, query: str) -> list[float]:
    return [o["result"] for o in values(net, "/Observations", **{"$filter": query, "$orderby": "id"})]


@pytest.mark.parametrize(("query", "expected"), [
    ("result eq 8.5", [8.5]),
    ("result ne 8.0 and Datastream/id eq 1 and result lt 8.25", [8.1, 8.2]),
    ("result gt 9.0 and Datastream/id eq 1", [9.1]),
    ("result ge 9.0 and Datastream/id eq 1", [9.0, 9.1]),
    ("result le 0", [0.0]),
    ("(result lt 1 or result gt 11) and not (result eq 0)", [12.0]),
    ("result add 1 eq 4.5", [3.5]),
    ("result sub 2 eq 10", [12.0]),
    ("result mul 2 eq 24", [12.0]),
    ("result div 4 eq 3", [12.0]),
    ("result mod 5 eq 2 and Datastream/id eq 2", [12.0]),
    ("-result eq -12", [12.0]),
    ("round(result) eq 7", [6.6, 6.8]),
    ("floor(result) eq 9 and Datastream/id eq 1", [9.0, 9.1]),
    ("ceiling(result) eq 4", [3.5]),
])
def test_filter_comparison_logical_and_arithmetic_operators(net, query, expected):
    assert results(net, query) == pytest.approx(expected)


@pytest.mark.parametrize(("query", "expected"), [
    ("substringof('Jamsu', name)", [2]),
    ("contains(name, 'Bridge')", [1, 2]),
    ("startswith(name, 'Han')", [1]),
    ("endswith(name, 'Bridge')", [1, 2]),
    ("endswith(name, 'a much longer suffix than the name')", []),
    ("length(name) eq 14", [1]),
    ("tolower(name) eq 'jamsu bridge'", [2]),
    ("toupper(name) eq 'HANGANG BRIDGE'", [1]),
    ("trim(concat(' ', name)) eq 'Jamsu Bridge'", [2]),
    ("concat(concat(name, ' / '), description) eq 'Jamsu Bridge / 잠수교 수위관측소'", [2]),
    ("indexof(name, 'Bridge') eq 6", [2]),
    ("substring(name, 8) eq 'Bridge'", [1]),
    ("substring(name, 0, 5) eq 'Jamsu'", [2]),
    ("name eq 'Jamsu Bridge' or name eq 'Nowhere'", [2]),
    ("name eq 'It''s'", []),
])
def test_filter_string_functions(net, query, expected):
    assert ids(net, "/Things", **{"$filter": query}) == expected


@pytest.mark.parametrize(("query", "count"), [
    ("year(phenomenonTime) eq 2020 and month(phenomenonTime) eq 8 and day(phenomenonTime) eq 6", 20),
    ("hour(phenomenonTime) eq 6", 7),  # 06:00 … 06:50 on stream 1, 06:00 on stream 2
    ("minute(phenomenonTime) eq 30", 3),
    ("second(phenomenonTime) eq 0", 20),
    ("fractionalseconds(phenomenonTime) eq 0", 20),
    ("totaloffsetminutes(phenomenonTime) eq 0", 20),
    ("mindatetime(phenomenonTime) eq maxdatetime(phenomenonTime)", 20),
    ("date(phenomenonTime) eq 2020-08-06", 20),
    ("time(phenomenonTime) lt 05:15:00", 5),
    ("phenomenonTime ge 2020-08-06T06:00:00Z", 8),
    ("phenomenonTime lt 2020-08-06T14:05:00+09:00", 3),  # 05:05 UTC
    ("phenomenonTime lt 2020-08-07", 20),  # a date against a time: midnight UTC
    ("phenomenonTime lt now()", 20),
    ("resultTime eq null", 20),
    ("resultTime ne null", 0),
])
def test_filter_date_functions_and_time_literals(net, query, count):
    assert net.get("/Observations", **{"$filter": query, "$count": "true", "$top": "0"})["@iot.count"] == count


@pytest.mark.parametrize(("path", "query", "expected"), [
    ("/Observations", "Datastream/id eq 3 and result gt 6.5", [19, 20]),
    ("/Observations", "Datastream/Thing/name eq 'Jamsu Bridge' and result ge 6.6", [19, 20]),
    ("/Observations", "Datastream/ObservedProperty/name eq 'Rainfall' and result gt 1", [13, 14]),
    ("/Observations", "FeatureOfInterest/name eq '잠수교' and result lt 6.3", [16, 17]),
    ("/Observations", "resultQuality/flag eq 'good' and Datastream/id eq 2", [13, 14, 15]),
    ("/Datastreams", "Thing/name eq 'Hangang Bridge'", [1, 2]),
    ("/Datastreams", "ObservedProperty/name eq 'Rainfall'", [2]),
    ("/Datastreams", "unitOfMeasurement/symbol eq 'm'", [1, 3]),
    ("/Datastreams", "Sensor/name eq 'Jamsu water level sensor'", [3]),
    ("/Things", "Datastreams/name eq 'Hangang rainfall'", [1]),  # any of a collection
    ("/Things", "Datastreams/Observations/result gt 11", [1]),
    ("/Things", "Locations/name eq '잠수교'", [2]),
    ("/Things", "not (Datastreams/unitOfMeasurement/symbol eq 'mm')", [2]),
    ("/Things", "properties/grade eq 2", [2]),
    ("/Things", "properties/river eq 'Han' and properties/grade lt 2", [1]),
    ("/Things", "properties/missing eq null", [1, 2]),
    ("/Things", "properties/grade add 1 eq 3", [2]),
    ("/Locations", "Things/name eq 'Hangang Bridge'", [1]),
    ("/HistoricalLocations", "Thing/name eq 'Jamsu Bridge'", [2]),
])
def test_filter_paths_cross_navigation_properties(net, path, query, expected):
    assert ids(net, path, **{"$filter": query, "$orderby": "id"}) == expected


def test_filter_and_orderby_apply_inside_navigation_collections(net):
    found = values(net, "/Datastreams(1)/Observations", **{"$filter": "result ge 9", "$orderby": "result desc"})
    assert [o["result"] for o in found] == [9.1, pytest.approx(9.0)]


def test_orderby_takes_several_keys_each_ascending_or_descending(net):
    streams = values(net, "/Datastreams", **{"$orderby": "unitOfMeasurement/symbol desc,name asc"})
    assert [d["@iot.id"] for d in streams] == [2, 1, 3]
    things = values(net, "/Things", **{"$orderby": "properties/grade desc"})
    assert [t["name"] for t in things] == ["Jamsu Bridge", "Hangang Bridge"]
    latest = values(net, "/Observations", **{"$orderby": "Datastream/name desc,phenomenonTime desc", "$top": "2"})
    assert [o["@iot.id"] for o in latest] == [20, 19]  # Jamsu water level, newest first
    by_length = values(net, "/Things", **{"$orderby": "length(description),id"})
    assert [t["@iot.id"] for t in by_length] == [2, 1]


def test_select_keeps_only_the_named_properties_and_navigation_links(net):
    [thing] = values(net, "/Things", **{"$select": "id,name,Datastreams", "$filter": "id eq 1"})
    assert thing == {"@iot.id": 1, "name": "Hangang Bridge",
                     "Datastreams@iot.navigationLink": f"{BASE}/Things(1)/Datastreams"}
    assert net.get("/Observations(1)", **{"$select": "result,phenomenonTime"}) == {
        "result": 8.0, "phenomenonTime": "2020-08-06T05:00:00Z"}


def test_expand_nests_options_for_each_parent(net):
    [thing] = values(net, "/Things", **{
        "$filter": "id eq 1",
        "$expand": "Datastreams($select=name;$orderby=id;$expand=Observations($top=3;$orderby=phenomenonTime desc;"
                   "$select=result;$count=true)),Locations($select=name)",
    })
    water, rain = thing["Datastreams"]
    assert water["name"] == "Hangang water level" and set(water) == {
        "name", "Observations", "Observations@iot.count", "Observations@iot.nextLink"}
    assert [o["result"] for o in water["Observations"]] == pytest.approx([9.1, 9.0, 8.9])
    assert water["Observations@iot.count"] == 12
    assert [o["result"] for o in rain["Observations"]] == [0.0, 12.0, 3.5]
    assert "Observations@iot.nextLink" not in rain
    assert thing["Locations"] == [{"name": "한강대교"}]
    follow = net.client.get(water["Observations@iot.nextLink"]).json()
    assert [o["result"] for o in follow["value"]] == pytest.approx([8.8, 8.7, 8.6])


def test_expand_reaches_single_entities_paths_and_filters(net):
    observation = net.get("/Observations(19)", **{"$expand": "Datastream/Thing,FeatureOfInterest($select=name)"})
    assert observation["Datastream"]["Thing"]["name"] == "Jamsu Bridge"
    assert observation["FeatureOfInterest"] == {"name": "잠수교"}
    streams = values(net, "/Datastreams",
                     **{"$expand": "Observations($filter=result gt 9;$select=id)", "$orderby": "id"})
    assert [len(d["Observations"]) for d in streams] == [1, 1, 0]


def test_paging_follows_next_links_to_the_end(net):
    seen, page = [], net.get("/Observations", **{"$top": "6", "$orderby": "phenomenonTime,id", "$count": "true"})
    assert page["@iot.count"] == 20
    while True:
        seen += [o["@iot.id"] for o in page["value"]]
        if "@iot.nextLink" not in page:
            break
        assert page["@iot.nextLink"].startswith(f"{BASE}/Observations?")
        page = net.client.get(page["@iot.nextLink"]).json()
        assert page["@iot.count"] == 20
    assert sorted(seen) == list(range(1, 21)) and len(seen) == 20


def test_top_defaults_to_100_skip_pages_and_count_can_be_alone(net):
    assert len(values(net, "/Observations")) == 20
    assert ids(net, "/Observations", **{"$skip": "18"}) == [19, 20]
    counted = net.get("/Observations", **{"$top": "0", "$count": "true"})
    assert counted == {"@iot.count": 20, "value": []}
    assert "@iot.count" not in net.get("/Things", **{"$count": "false"})


def test_observations_as_a_data_array(net):
    [group] = values(net, "/Datastreams(2)/Observations", **{"$resultFormat": "dataArray",
                                                              "$select": "phenomenonTime,result"})
    assert group["components"] == ["phenomenonTime", "result"]
    assert group["dataArray"] == [[at(0), 3.5], [at(60), 12.0], [at(120), 0.0]]
    assert group["Datastream@iot.navigationLink"] == f"{BASE}/Datastreams(2)"


# ── errors: 400 naming the option, 404 naming the path ───────────────────────────────────


@pytest.mark.parametrize(("params", "option"), [
    ({"$filter": "name eq"}, "$filter"),
    ({"$filter": "name eq 'unterminated"}, "$filter"),
    ({"$filter": "nosuch eq 1"}, "$filter"),
    ({"$filter": "name eq 1"}, "$filter"),
    ({"$filter": "length(name)"}, "$filter"),
    ({"$filter": "frobnicate(name) eq 1"}, "$filter"),
    ({"$filter": "geo.distance(Locations/location, geography'POINT(127 37.5)') lt 1"}, "$filter"),
    ({"$filter": "st_within(Locations/location, geography'POLYGON((0 0,1 0,1 1,0 0))')"}, "$filter"),
    ({"$filter": "name gt null"}, "$filter"),
    ({"$filter": "Datastreams eq 1"}, "$filter"),
    ({"$filter": "phenomenonTime gt 2020-08-06T05:00:00"}, "$filter"),
    ({"$orderby": "name sideways"}, "$orderby"),
    ({"$orderby": "Datastreams/name"}, "$orderby"),
    ({"$select": "name,nosuch"}, "$select"),
    ({"$select": "name desc"}, "$select"),
    ({"$expand": "Nowhere"}, "$expand"),
    ({"$expand": "Datastreams($top=x)"}, "$expand(Datastreams).$top"),
    ({"$expand": "Datastreams($bogus=1)"}, "$expand(Datastreams).$bogus"),
    ({"$expand": "Datastreams($select=name"}, "$expand"),
    ({"$top": "-1"}, "$top"),
    ({"$top": "ten"}, "$top"),
    ({"$skip": "1.5"}, "$skip"),
    ({"$count": "yes"}, "$count"),
    ({"$format": "json"}, "$format"),
    ({"$filter": ""}, "$filter"),
])
def test_malformed_or_unknown_options_are_400_naming_the_option(net, params, option):
    assert_problem(net.client.get(f"{STA}/Things", params=params), 400, option)


def test_options_that_only_apply_to_collections_are_refused_on_one_entity(net):
    assert_problem(net.client.get(f"{STA}/Things(1)", params={"$top": "1"}), 400, "$top")


def test_a_division_by_zero_is_not_a_server_error(net):
    response = net.client.get(f"{STA}/Observations", params={"$filter": "result div 0 gt 1"})
    assert response.status_code in (200, 400), response.text  # SQLite yields null, PostgreSQL refuses


@pytest.mark.parametrize("path", ["/Things(99)", "/Things(99999999999)", "/Nothings", "/Things(1)/Nowhere",
                                  "/Things(99)/Datastreams", "/Things(x)", "/Observations(1)/Datastream/nosuch",
                                  "/Things(1)/name/extra"])
def test_unknown_paths_are_404(net, path):
    assert_problem(net.client.get(STA + path), 404)


def test_unexpanded_collections_cannot_be_navigated(net):
    assert_problem(net.client.get(f"{STA}/Things/Datastreams"), 400, "path")


# ── 18-088 §10: create, update, delete ───────────────────────────────────────────────────


def test_deep_insert_links_existing_entities_by_id(net):
    response = net.post("/Datastreams", {
        "name": "Hangang discharge", "description": "flow", "unitOfMeasurement": {
            "name": "cubic metre per second", "symbol": "m3/s", "definition": "ucum:m3/s"},
        "observationType": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement",
        "Thing": {"@iot.id": 1}, "Sensor": {"@iot.id": 1},
        "ObservedProperty": {"@iot.id": net.property_ids["discharge"]},
    })
    assert response.headers["location"] == f"{BASE}/Datastreams(4)"
    assert response.json()["@iot.selfLink"] == f"{BASE}/Datastreams(4)"
    assert net.get("/Datastreams(4)/Thing")["name"] == "Hangang Bridge"


def test_a_new_location_of_a_thing_becomes_its_current_one_with_history(net):
    net.post("/Things(2)/Locations", {"name": "잠수교 남단", "description": "moved south",
                                      "encodingType": "application/vnd.geo+json",
                                      "location": point(126.996, 37.510)})
    assert [loc["name"] for loc in values(net, "/Things(2)/Locations")] == ["잠수교 남단"]
    assert len(values(net, "/Things(2)/HistoricalLocations")) == 2
    net.post("/Observations", {"phenomenonTime": at(200), "result": 7.0, "Datastream": {"@iot.id": 3}})
    assert net.get("/Observations(21)/FeatureOfInterest")["name"] == "잠수교 남단"


def test_every_entity_set_accepts_a_post(net):
    sensor = net.post("/Sensors", {"name": "tilt meter", "description": "bridge pier",
                                   "encodingType": "application/pdf", "metadata": "https://example.org/tilt.pdf"})
    prop = net.post("/ObservedProperties", {"name": "Tilt", "definition": "http://qudt.org/vocab/quantitykind/Angle",
                                            "description": "pier tilt"})
    feature = net.post("/FeaturesOfInterest", {"name": "pier 3", "description": "south pier",
                                               "encodingType": "application/geo+json", "feature": point(126.96, 37.51)})
    history = net.post("/HistoricalLocations", {"time": "2020-08-01T00:00:00Z", "Thing": {"@iot.id": 1},
                                                "Locations": [{"@iot.id": 1}]})
    location = net.post("/Locations", {"name": "depot", "description": "spare gauges",
                                       "encodingType": "application/geo+json", "location": point(127.0, 37.5)})
    for response in (sensor, prop, feature, history, location):
        assert net.client.get(response.headers["location"]).json() == response.json()
    assert prop.json()["@iot.id"] == len(net.property_ids) + 2  # after the catalogue and Rainfall
    assert net.get("/Sensors(4)")["metadata"] == "https://example.org/tilt.pdf"
    assert net.get("/HistoricalLocations(3)")["time"] == "2020-08-01T00:00:00Z"


def test_patch_changes_properties_and_links(net):
    response = net.client.patch(f"{STA}/Things(1)", json={"description": "한강대교", "properties": {"river": "Han"}},
                                headers=net.auth("operator"))
    assert response.status_code == 200 and response.json()["description"] == "한강대교"
    net.client.patch(f"{STA}/Datastreams(2)", json={"Thing": {"@iot.id": 2}}, headers=net.auth())
    assert net.get("/Datastreams(2)/Thing")["@iot.id"] == 2


def test_json_patch_and_put(net):
    patch = [{"op": "replace", "path": "/name", "value": "Jamsu"},
             {"op": "add", "path": "/properties/grade", "value": 3},
             {"op": "test", "path": "/description", "value": "잠수교 수위관측소"}]
    response = net.client.patch(f"{STA}/Things(2)", content=json.dumps(patch),
                                headers={**net.auth(), "Content-Type": "application/json-patch+json"})
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "Jamsu" and response.json()["properties"] == {"river": "Han", "grade": 3}
    put = net.client.put(f"{STA}/Things(2)", json={"name": "Jamsu Bridge"}, headers=net.auth())
    assert put.status_code == 200 and put.json()["description"] == "" and put.json()["properties"] is None


def test_delete_removes_an_entity_and_what_depends_on_it(net):
    assert net.client.delete(f"{STA}/Sensors(3)", headers=net.auth("admin")).status_code == 200
    assert_problem(net.client.get(f"{STA}/Datastreams(3)"), 404)
    assert net.get("/Observations", **{"$count": "true", "$top": "0"})["@iot.count"] == 15
    assert net.client.delete(f"{STA}/Things(1)", headers=net.auth()).status_code == 200
    assert net.get("/Observations", **{"$count": "true", "$top": "0"})["@iot.count"] == 0
    assert_problem(net.client.delete(f"{STA}/Things(1)", headers=net.auth()), 404)
    assert_problem(net.client.delete(f"{STA}/Things(99999999999)", headers=net.auth()), 404)


@pytest.mark.parametrize(("body", "field"), [
    ({"description": "no name"}, "body.name"),
    ({"name": "x", "colour": "red"}, "body.colour"),
    ({"name": 5}, "body.name"),
    ({"name": "x", "properties": [1]}, "body.properties"),
    ({"name": "x", "@iot.id": 7}, "body.@iot.id"),
    ({"name": "x", "Locations": [{"name": "nowhere", "location": {"type": "Point", "coordinates": [500, 0]}}]},
     "body.Locations.0.location"),
    ({"name": "x", "Locations": [{"@iot.id": 99}]}, "body.Locations.0.@iot.id"),
    ({"name": "x", "Datastreams": [{"name": "d", "unitOfMeasurement": {"name": "m", "symbol": "m", "definition": "m"},
                                    "observationType": "x", "Sensor": {"@iot.id": 1}}]},
     "body.Datastreams.0.ObservedProperty"),
    ({"name": "x", "Datastreams": [{"name": "d", "unitOfMeasurement": {"name": "m", "symbol": "m", "definition": "m"},
                                    "observationType": "x", "Sensor": {"@iot.id": 1},
                                    "ObservedProperty": {"@iot.id": 1}, "phenomenonTime": "2020-01-01T00:00:00Z"}]},
     "body.Datastreams.0.phenomenonTime"),
    ({"name": "x", "Datastreams": [{"name": "d", "unitOfMeasurement": {"name": "m", "symbol": "m", "definition": "m"},
                                    "observationType": "x", "Sensor": {"@iot.id": 1},
                                    "ObservedProperty": {"@iot.id": 1}, "Observations": [{"result": 1}]}]},
     "body.Datastreams.0.Observations.0"),
])
def test_invalid_bodies_are_400_naming_the_field_and_store_nothing(net, body, field):
    assert_problem(net.client.post(f"{STA}/Things", json=body, headers=net.auth()), 400, field)
    assert len(values(net, "/Things")) == 2 and len(values(net, "/Datastreams")) == 3


def test_writes_need_a_writer_token_and_reads_do_not(net):
    assert_problem(net.client.post(f"{STA}/Things", json={"name": "x"}), 401)
    assert_problem(net.client.post(f"{STA}/Things", json={"name": "x"}, headers=net.auth("citizen")), 403)
    assert_problem(net.client.delete(f"{STA}/Things(1)", headers=net.auth("citizen")), 403)
    for role in ("admin", "operator", "device"):
        net.post("/Things", {"name": f"by {role}"}, role=role)


def test_methods_on_the_wrong_kind_of_resource_are_405(net):
    assert_problem(net.client.post(f"{STA}/Things(1)", json={"name": "x"}, headers=net.auth()), 405)
    assert_problem(net.client.patch(f"{STA}/Things", json={"name": "x"}, headers=net.auth()), 405)
    assert_problem(net.client.post(f"{STA}/Things", content=b"{nope", headers={
        **net.auth(), "Content-Type": "application/json"}), 400, "body")
