"""Around an incident: which cameras can see it (hand-checked geometry), what and who is nearby."""

from __future__ import annotations

from math import cos, radians, sin

import pytest
from test_api_support import build_world

from haechi.response.geometry import angle_between, bearing_deg, camera_sees
from haechi.store import places

CAM = {"lon": 127.0, "lat": 37.5, "direction_deg": 90.0, "fov_deg": 60.0, "range_m": 100.0}


def moved(lon: float, lat: float, bearing: float, metres: float) -> tuple[float, float]:
    """A point ``metres`` away on ``bearing`` (flat approximation, fine at 100 m)."""
    dlat = metres * cos(radians(bearing)) / 111_195
    dlon = metres * sin(radians(bearing)) / (111_195 * cos(radians(lat)))
    return lon + dlon, lat + dlat


def test_bearings_by_hand():
    assert bearing_deg(127.0, 37.5, 127.0, 37.6) == pytest.approx(0.0, abs=1e-9)
    assert bearing_deg(127.0, 37.5, 127.1, 37.5) == pytest.approx(90.0, abs=0.1)
    assert bearing_deg(127.0, 37.5, 127.0, 37.4) == pytest.approx(180.0, abs=1e-9)
    assert bearing_deg(127.0, 37.5, 126.9, 37.5) == pytest.approx(270.0, abs=0.1)
    assert angle_between(350, 10) == 20 and angle_between(10, 350) == 20 and angle_between(0, 180) == 180


@pytest.mark.parametrize(("camera", "bearing", "metres", "sees"), [
    (CAM, 90, 50, True),  # straight ahead, in range
    (CAM, 90, 150, False),  # straight ahead, beyond its 100 m range
    (CAM, 0, 50, False),  # 90° off axis: outside a 60° field of view
    (CAM, 118, 50, True),  # 28° off axis: inside the half-angle of 30°
    (CAM, 125, 50, False),  # 35° off axis
    (CAM | {"direction_deg": 350.0}, 10, 50, True),  # the view cone wraps through north
    (CAM | {"direction_deg": 350.0}, 40, 50, False),
    (CAM | {"direction_deg": None}, 200, 50, True),  # no direction recorded: a turning camera
    (CAM | {"range_m": None}, 90, 45, True),  # no range recorded: the 50 m default
    (CAM | {"range_m": None}, 90, 60, False),
])
def test_camera_view_cone_by_hand(camera, bearing, metres, sees):
    lon, lat = moved(camera["lon"], camera["lat"], bearing, metres)
    view = camera_sees(camera, lon, lat, default_range_m=50)
    assert view["sees"] is sees, view
    assert view["distance_m"] == pytest.approx(metres, rel=0.01)
    assert view["direction_known"] is (camera["direction_deg"] is not None)


SCENE = (127.036, 37.500)


@pytest.fixture
def world(engine):
    world = build_world(engine)
    east_of_scene = moved(*SCENE, 270, 40)  # 40 m west of the scene, so facing east sees it
    with engine.begin() as conn:
        places.save_places(conn, [
            {"kind": "cctv", "ref": "SEES", "name_ko": "보는 카메라", "lon": east_of_scene[0], "lat": east_of_scene[1],
             "direction_deg": 90.0, "fov_deg": 60.0, "range_m": 80.0},
            {"kind": "cctv", "ref": "AWAY", "name_ko": "등진 카메라", "lon": east_of_scene[0], "lat": east_of_scene[1],
             "direction_deg": 270.0, "fov_deg": 60.0, "range_m": 80.0},
            {"kind": "school_zone", "ref": "SZ-1", "name_ko": "역삼초등학교", "lon": 127.037, "lat": 37.501,
             "school_name": "역삼초등학교", "radius_m": 300},
            {"kind": "elderly_care", "ref": "EC-1", "name_ko": "역삼 요양원", "lon": 127.035, "lat": 37.499},
            {"kind": "school_zone", "ref": "SZ-FAR", "name_ko": "먼 학교", "lon": 127.09, "lat": 37.52},
        ])
    return world


def test_surroundings_list_cameras_that_see_it_shelters_hospitals_vulnerable_and_people(world):
    body = {"kind": "fire", "lon": SCENE[0], "lat": SCENE[1], "title": "역삼동 화재"}
    incident = world.client.post("/api/v1/incidents", json=body, headers=world.auth("operator")).json()
    got = world.client.get(f"/api/v1/incidents/{incident['id']}/surroundings", headers=world.auth("operator")).json()
    assert [c["ref"] for c in got["cameras"]] == ["SEES"]  # the one facing away cannot see it
    assert got["cameras"][0]["distance_m"] == pytest.approx(40, abs=1)
    assert [s["ref"] for s in got["shelters"]] == ["S-GN-1"]  # S-GN-2 is 2.2 km away, beyond 2 km
    assert got["shelters"][0]["capacity"] == 50
    assert [h["ref"] for h in got["hospitals"]] == ["H-GN"] and got["hospitals"][0]["emergency_level"] == "regional"
    assert {v["ref"] for v in got["vulnerable"]} == {"SZ-1", "EC-1"}  # the far school is out of reach
    people = got["people"]
    assert people["area_code"] == "11680" and people["statistics"]["population"]["value"] == 536_107
    assert people["statistics"]["population"]["year"] == 2023  # the latest year
    assert people["estimate"]["residents"] > 0 and "density" in people["estimate"]["method"]
