"""End to end over the real HTTP API: a camera sees smoke, the CCTV center hands it to 119, a unit
is dispatched and arrives, the closed incident sends it back, a drone flies, and every step reaches
the live stream."""

from __future__ import annotations

from datetime import timedelta

import httpx
from conftest import LiveServer, SseListener
from test_api_support import seed

from haechi.api import create_app
from haechi.core.clock import utcnow
from haechi.store import access, places

CAMERA = {"kind": "cctv", "ref": "GN-7", "name_ko": "역삼 CCTV", "lon": 127.0360, "lat": 37.5000,
          "direction_deg": 90.0, "fov_deg": 90.0, "range_m": 100.0}


def test_smoke_to_arrival_over_http_with_the_live_stream(engine):
    tokens, _ = seed(engine)
    with engine.begin() as conn:
        places.save_places(conn, [CAMERA])
        tokens["cctv_op"] = access.create_token(conn, "cctv-op", "operator", center="cctv")[1]
        station = next(p["id"] for p in places.list_places(conn, "fire_station"))

    def auth(who):
        return {"Authorization": f"Bearer {tokens[who]}"}

    def wanted(seen):
        names = [e for e, _ in seen]
        return "drone.position" in names and names.count("unit.changed") >= 4

    with LiveServer(create_app(engine)) as server:
        api = f"{server.url}/api/v1"
        # the anonymous stream carries the public picture only: incidents are for staff tokens
        with SseListener(f"{api}/stream?types=incident.>,unit.>,drone.>,cctv.>&token={tokens['operator']}",
                         wanted, timeout=60) as listener:
            unit = httpx.post(f"{api}/units", headers=auth("operator"), json={
                "call_sign": "강남-펌프1", "unit_type": "pumper", "station_place_id": station}).json()
            smoke = httpx.post(f"{api}/cctv/events", headers=auth("device"), json={
                "event_id": "vms-1", "camera_ref": "GN-7", "type": "smoke_fire",
                "observed_at": utcnow().isoformat(), "lon": 127.0366, "lat": 37.5001, "confidence": 0.93})
            assert smoke.status_code == 201, smoke.text
            incident_id = smoke.json()["incident_id"]
            path = f"{api}/incidents/{incident_id}"
            # The camera that sent it is among those that can see it.
            seeing = httpx.get(f"{path}/surroundings", headers=auth("operator")).json()["cameras"]
            assert [c["ref"] for c in seeing] == ["GN-7"]
            assert httpx.post(f"{path}/status", headers=auth("cctv_op"), json={"status": "verified"}).status_code == 200
            assert httpx.post(f"{path}/handoff", headers=auth("cctv_op"),
                              json={"center": "119"}).json()["center"] == "119"
            best = httpx.get(f"{path}/recommendations", headers=auth("operator")).json()
            assert [u["call_sign"] for u in best["units"]] == ["강남-펌프1"]
            sent = httpx.post(f"{path}/dispatch", headers=auth("operator"), json={"unit_ids": [unit["id"]]}).json()
            [dispatch] = sent["dispatches"]
            arrived = httpx.post(f"{path}/dispatches/{dispatch['id']}/arrival", headers=auth("operator"), json={})
            assert arrived.json()["met_golden_time"] is True
            for status in ("contained", "closed"):
                assert httpx.post(f"{path}/status", headers=auth("operator"),
                                  json={"status": status}).status_code == 200
            drone = httpx.post(f"{api}/drones", headers=auth("operator"), json={
                "call_sign": "드론-1", "base_place_id": station}).json()
            telemetry = httpx.post(f"{api}/drones/{drone['id']}/telemetry", headers=auth("device"), json={
                "time": (utcnow() - timedelta(seconds=2)).isoformat(), "lon": 127.037, "lat": 37.5005,
                "altitude_m": 60, "battery_pct": 81})
            assert telemetry.status_code == 200, telemetry.text
        history = httpx.get(f"{path}/history", headers=auth("operator")).json()
        times = httpx.get(f"{api}/response-times", headers=auth("operator")).json()
    assert [(e["action"], e["to_value"]) for e in history] == [
        ("opened", "reported"), ("cctv_event", None), ("status", "verified"), ("handoff", "119"),
        ("dispatch", "dispatched"), ("status", "responding"), ("arrival", "on_scene"),
        ("status", "contained"), ("status", "closed"), ("unit", "returning"), ("unit", "available")]
    assert (times["arrivals"], times["within_golden_time"]) == (1, 1)
    changes = [d["action"] for e, d in listener.seen if e == "incident.changed"]
    assert changes == ["opened", "status", "handoff", "dispatch", "arrival", "status", "status"]
    units = [d["status"] for e, d in listener.seen if e == "unit.changed"]
    assert units == ["available", "dispatched", "on_scene", "available"]  # closing sends the unit back
    [position] = [d for e, d in listener.seen if e == "drone.position"]
    assert (position["lon"], position["lat"], position["battery_pct"]) == (127.037, 37.5005, 81.0)
    assert [d["event_id"] for e, d in listener.seen if e == "cctv.event"] == ["vms-1"]
