"""Areas and places over HTTP: lists, filters, GeoJSON, point lookups and writes."""

from __future__ import annotations

from itertools import pairwise

import pytest
from shapely.geometry import shape
from test_api_support import GANGNAM_BOX, assert_problem, build_world

SHELTER = {
    "kind": "shelter",
    "ref": "S-GN-9",
    "name_ko": "개포 대피소",
    "area_code": "11680",
    "lon": 127.07,
    "lat": 37.48,
    "shelter_kind": "earthquake_outdoor",
    "capacity": 3000,
}


@pytest.fixture
def world(engine):
    return build_world(engine)


# ── areas ──────────────────────────────────────────────────────────────────────────────


def test_areas_filter_by_level_and_parent(world):
    districts = world.client.get("/api/v1/areas?level=district").json()
    assert [a["code"] for a in districts] == ["11110", "11680"]
    assert "geometry" not in districts[0]
    assert districts[1]["bbox"] == list(GANGNAM_BOX)
    children = world.client.get("/api/v1/areas?parent=11680").json()
    assert [a["name_en"] for a in children] == ["Yeoksam-dong"]


def test_unknown_area_level_is_422(world):
    assert_problem(world.client.get("/api/v1/areas?level=province"), 422, "query.level")


def test_area_embeds_the_latest_statistics(world):
    gangnam = world.client.get("/api/v1/areas/11680").json()
    assert gangnam["name_ko"] == "강남구"
    assert gangnam["statistics"]["population"] == {"value": 536_107, "year": 2023, "source": "t"}
    assert gangnam["statistics"]["age_65_plus"]["value"] == 80_000
    assert gangnam["geometry"] is None
    with_boundary = world.client.get("/api/v1/areas/11680?geometry=true").json()
    assert with_boundary["geometry"]["type"] == "Polygon"


def test_areas_geojson_is_a_valid_rfc7946_feature_collection(world):
    response = world.client.get("/api/v1/areas.geojson")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/geo+json")
    collection = response.json()
    assert collection["type"] == "FeatureCollection"
    assert [f["id"] for f in collection["features"]] == ["11110", "11680"]  # districts by default
    for feature in collection["features"]:
        assert feature["type"] == "Feature"
        assert set(feature) >= {"type", "geometry", "properties"}
        assert feature["properties"]["name_ko"]
        geometry = feature["geometry"]
        assert geometry["type"] in {"Polygon", "MultiPolygon"}
        polygon = shape(geometry)
        assert polygon.is_valid
        for ring in geometry["coordinates"]:
            assert ring[0] == ring[-1] and len(ring) >= 4  # closed linear rings
            assert all(-180 <= lon <= 180 and -90 <= lat <= 90 for lon, lat in ring)
        # RFC 7946 §3.1.6: exterior rings anticlockwise, even for Gangnam, stored clockwise.
        assert polygon.exterior.is_ccw
        w, s, e, n = feature["bbox"]
        assert (w, s, e, n) == pytest.approx(polygon.bounds)


def test_areas_geojson_by_level(world):
    dongs = world.client.get("/api/v1/areas.geojson?level=dong").json()["features"]
    assert [f["id"] for f in dongs] == ["1168010100"]


def test_area_at_a_point(world):
    found = world.client.get("/api/v1/areas/at?lon=127.05&lat=37.50").json()
    assert found["code"] == "11680"
    dong = world.client.get("/api/v1/areas/at?lon=127.04&lat=37.50&level=dong").json()
    assert dong["code"] == "1168010100"


def test_area_at_a_point_outside_every_area_is_404(world):
    problem = assert_problem(world.client.get("/api/v1/areas/at?lon=126.5&lat=33.4"), 404)
    assert "126.5" in problem["detail"]


def test_area_at_needs_both_coordinates(world):
    assert_problem(world.client.get("/api/v1/areas/at?lon=127.05"), 422, "query.lat")


# ── places: reading ────────────────────────────────────────────────────────────────────


def test_places_by_kind_carry_their_details(world):
    shelters = world.client.get("/api/v1/places?kind=shelter").json()
    assert [p["ref"] for p in shelters] == ["S-GN-1", "S-GN-2", "S-JN-1"]
    assert shelters[1]["capacity"] == 900


def test_places_by_area_and_bbox(world):
    in_jongno = world.client.get("/api/v1/places?area=11110").json()
    assert [p["ref"] for p in in_jongno] == ["S-JN-1"]
    box = world.client.get("/api/v1/places?bbox=127.03,37.49,127.045,37.505").json()
    assert sorted(p["ref"] for p in box) == ["H-GN", "S-GN-1"]
    assert len(world.client.get("/api/v1/places?limit=2").json()) == 2


@pytest.mark.parametrize("bbox", ["127,37,128", "a,b,c,d", "128,37,127,38", "127,37,128,95"])
def test_bad_bbox_is_named(world, bbox):
    assert_problem(world.client.get(f"/api/v1/places?bbox={bbox}"), 422, "query.bbox")


def test_one_place_with_its_detail(world):
    first = world.client.get("/api/v1/places?kind=hospital").json()[0]
    hospital = world.client.get(f"/api/v1/places/{first['id']}").json()
    assert (hospital["name_ko"], hospital["er_beds"]) == ("강남 응급의료센터", 30)


def test_nearest_places_nearest_first_within_radius(world):
    found = world.client.get("/api/v1/places/nearest?lon=127.036&lat=37.5&within_m=1500").json()
    assert [p["ref"] for p in found] == ["S-GN-1", "H-GN", "F-GN"]
    assert found[0]["distance_m"] == 0
    assert all(a["distance_m"] <= b["distance_m"] <= 1500 for a, b in pairwise(found))
    shelters = world.client.get(
        "/api/v1/places/nearest?lon=127.036&lat=37.5&kind=shelter&kind=fire_station&limit=2"
    ).json()
    assert [p["ref"] for p in shelters] == ["S-GN-1", "F-GN"]


def test_nearest_refuses_an_unknown_kind(world):
    assert_problem(
        world.client.get("/api/v1/places/nearest?lon=127&lat=37.5&kind=bunker"), 422, "query.kind.0"
    )


# ── places: writing ────────────────────────────────────────────────────────────────────


def test_operator_saves_places_and_a_resend_updates(world):
    operator = world.auth("operator")
    saved = world.client.post("/api/v1/places", json={"places": [SHELTER]}, headers=operator)
    assert saved.status_code == 200, saved.text
    assert saved.json() == {"saved": 1}
    renamed = {**SHELTER, "name_ko": "개포 지진옥외대피장소", "capacity": 3500}
    world.client.post("/api/v1/places", json={"places": [renamed]}, headers=operator)
    stored = [
        p for p in world.client.get("/api/v1/places?kind=shelter").json() if p["ref"] == "S-GN-9"
    ]
    assert [(p["name_ko"], p["capacity"]) for p in stored] == [("개포 지진옥외대피장소", 3500)]


@pytest.mark.parametrize(
    ("place", "field"),
    [
        ({**SHELTER, "kind": "bunker"}, "body.places.0.kind"),
        ({k: v for k, v in SHELTER.items() if k != "kind"}, "body.places.0.kind"),
        ({k: v for k, v in SHELTER.items() if k != "shelter_kind"}, "body.places.0.shelter_kind"),
        ({**SHELTER, "kind": "hospital"}, "body.places.0.shelter_kind"),  # not a hospital's field
        ({**SHELTER, "lon": 227.07}, "body.places.0.lon"),
        ({**SHELTER, "lat": -91}, "body.places.0.lat"),
        ({**SHELTER, "capacity": -1}, "body.places.0.capacity"),
        ({**SHELTER, "area_code": "11999"}, "body.places.0.area_code"),  # no such area loaded
    ],
)
def test_invalid_place_names_the_field(world, place, field):
    response = world.client.post(
        "/api/v1/places", json={"places": [place]}, headers=world.auth("admin")
    )
    assert_problem(response, 422, field)
    assert len(world.client.get("/api/v1/places?kind=shelter").json()) == 3  # nothing saved


def test_invalid_place_in_a_batch_is_named_by_position(world):
    batch = [SHELTER, {**SHELTER, "ref": "S-GN-10", "capacity": "lots"}]
    response = world.client.post(
        "/api/v1/places", json={"places": batch}, headers=world.auth("admin")
    )
    assert_problem(response, 422, "body.places.1.capacity")


def test_empty_place_batch_is_refused(world):
    response = world.client.post("/api/v1/places", json={"places": []}, headers=world.auth("admin"))
    assert_problem(response, 422, "body.places")


def test_district_official_saves_places_in_own_district_only(world):
    official = world.auth("district_official")
    mine = world.client.post("/api/v1/places", json={"places": [SHELTER]}, headers=official)
    assert mine.status_code == 200
    theirs = {**SHELTER, "ref": "S-JN-9", "area_code": "11110", "lon": 126.99, "lat": 37.59}
    refused = world.client.post(
        "/api/v1/places", json={"places": [SHELTER, theirs]}, headers=official
    )
    assert_problem(refused, 403, "body.places.1.area_code")
