"""An area in pieces far apart (islands, exclaves) gets one CAP alert per piece, as aggregators
want one contiguous area per alert: each with its own polygon and the geocodes that fall in it,
each Update and Cancel referring to its own piece's messages, all recorded against the one warning.

No Seoul area has such pieces, so the test loads a small synthetic city: a district of two islands
about 20 km apart, one dong on each.
"""

from __future__ import annotations

import pytest
import shapely
from fastapi.testclient import TestClient

from haechi.alerts.cap import from_xml
from haechi.alerts.compose import contiguous_pieces, piece_of
from haechi.alerts.messages import library
from haechi.alerts.profile import errors
from haechi.api.app import create_app
from haechi.cities.targeting import AreaFacts
from haechi.store import access, areas
from haechi.store import warnings as store


def square(west: float, south: float, east: float, north: float) -> list[list[list[float]]]:
    return [[[west, south], [east, south], [east, north], [west, north], [west, south]]]


BIG_ISLAND, SMALL_ISLAND = square(126.30, 33.50, 126.34, 33.53), square(126.50, 33.40, 126.53, 33.42)


def area_row(code: str, level: str, parent: str | None, name_ko: str, name_en: str, rings: list) -> dict:
    geometry = {"type": "MultiPolygon", "coordinates": rings}
    west, south, east, north = shapely.geometry.shape(geometry).bounds
    return {"code": code, "level": level, "parent_code": parent, "name_ko": name_ko, "name_en": name_en,
            "area_km2": None, "geometry": geometry, "min_lon": west, "min_lat": south, "max_lon": east,
            "max_lat": north, "source": "synthetic, for this test"}


@pytest.fixture
def islands(engine):
    with engine.begin() as conn:
        areas.save_areas(conn, [
            area_row("99", "city", None, "섬시", "Island City", [BIG_ISLAND, SMALL_ISLAND]),
            area_row("99110", "district", "99", "두섬구", "Dusom-gu", [BIG_ISLAND, SMALL_ISLAND]),
            area_row("99110101", "dong", "99110", "큰섬동", "Keunseom-dong", [BIG_ISLAND]),
            area_row("99110102", "dong", "99110", "작은섬동", "Jageunseom-dong", [SMALL_ISLAND]),
        ])
        _, token = access.create_token(conn, "situation room", "operator", center="situation_room")
    return TestClient(create_app(engine), headers={"Authorization": f"Bearer {token}"}), engine


def alerts_of_warning(engine, warning_id: int) -> list[dict]:
    with engine.connect() as conn:
        return sorted(store.alerts_of(conn, warning_id), key=lambda a: a["id"])


def test_an_area_in_two_far_pieces_gets_one_alert_per_piece(islands):
    client, engine = islands
    body = {"hazard": "fine_dust", "level": "advisory", "area": "99110", "value": 160}
    issued = client.post("/api/v1/alerts", json=body)
    assert issued.status_code == 201, issued.text
    client.post("/api/v1/alerts", json=body | {"level": "warning", "value": 320})
    [warning] = [w for w in client.get("/api/v1/warnings").json() if w["area_key"] == "district:99110"]
    assert client.post(f"/api/v1/warnings/{warning['id']}/cancel").status_code == 201

    stored = alerts_of_warning(engine, warning["id"])  # every alert recorded against the one warning
    assert len(stored) == 6
    sent = [from_xml(a["cap_xml"]) for a in stored]
    by_piece = {piece: [a for a in sent if piece_of(a.identifier) == piece] for piece in (0, 1)}
    assert [[a.msg_type for a in alerts] for alerts in by_piece.values()] == [["Alert", "Update", "Cancel"]] * 2

    big, small = ([{g.value for i in alerts[0].infos for ar in i.areas for g in ar.geocodes}]
                  for alerts in by_piece.values())
    assert big == [{"9911000000", "9911010100"}] and small == [{"9911000000", "9911010200"}]
    for piece, alerts in by_piece.items():
        for alert in alerts:
            assert errors(alert) == [], (piece, errors(alert))  # contiguous: one polygon, and the rest
            [area] = alert.infos[0].areas
            [polygon] = area.polygons
            inside = shapely.Polygon([(lon, lat) for lat, lon in polygon])
            island = shapely.Polygon((BIG_ISLAND if piece == 0 else SMALL_ISLAND)[0])
            assert inside.buffer(1e-4).contains(island) and island.buffer(1e-4).contains(inside)
        issue, update, cancel = alerts
        assert update.references == (issue.reference(),)  # its own piece's chain, never the other's
        assert cancel.references == (issue.reference(), update.reference())
    assert issued.json()["identifier"] == by_piece[0][0].identifier  # the API answers with the first piece


def test_pieces_near_each_other_stay_one_area():
    lib = library().common["cap"]
    near = square(126.3, 33.5, 126.31, 33.51)[0], square(126.3105, 33.5, 126.32, 33.51)[0]  # ~50 m apart
    rings = tuple(tuple((lat, lon) for lon, lat in ring) for ring in near)
    area = AreaFacts(names={"ko": "가까운 두 조각"}, polygons=rings, geocodes=("9911000000",))
    assert contiguous_pieces(area, lib, lambda codes: {}) == [area]
    far = rings[0], tuple((lat - 0.1, lon + 0.2) for lat, lon in rings[1])
    pieces = contiguous_pieces(AreaFacts(names={"ko": "먼 두 조각"}, polygons=far, geocodes=("9911000000",)), lib,
                               lambda codes: {})
    assert [len(p.polygons) for p in pieces] == [1, 1] and all(p.geocodes == ("9911000000",) for p in pieces)
