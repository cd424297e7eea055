"""The warehouse for staff over HTTP: admins export and refresh, staff read the mined patterns."""

from __future__ import annotations

from fastapi.testclient import TestClient
from test_lake import T0, add_readings, make_stream

from haechi.api.app import create_app
from haechi.core.settings import Settings
from haechi.store import access


def test_admin_exports_and_refreshes_staff_read_patterns(sqlite_engine, tmp_path):
    with sqlite_engine.begin() as conn:
        stream = make_stream(conn)
        add_readings(conn, stream, T0, [1.0, 2.0, 3.0])
        _, admin = access.create_token(conn, "admin", "admin")
        _, operator = access.create_token(conn, "op", "operator", center="situation_room")
        _, citizen = access.create_token(conn, "citizen", "citizen")
    settings = Settings(lake_dir=str(tmp_path / "lake"))

    def auth(token):
        return {"Authorization": f"Bearer {token}"}

    with TestClient(create_app(sqlite_engine, settings)) as client:
        assert client.post("/api/v1/warehouse/export", headers=auth(operator)).status_code == 403
        exported = client.post("/api/v1/warehouse/export", headers=auth(admin))
        assert exported.status_code == 200
        assert {r["dataset"]: r["rows"] for r in exported.json()}["observations"] == 3
        refreshed = client.post("/api/v1/warehouse/refresh", headers=auth(admin)).json()
        assert refreshed["rows"]["station_hourly"] == 1
        status = client.get("/api/v1/warehouse/status", headers=auth(operator)).json()
        assert next(s for s in status if s["dataset"] == "observations")["pending"] == 0
        profiles = client.get("/api/v1/warehouse/patterns/profiles?property=water_level", headers=auth(operator))
        assert profiles.status_code == 200
        hours = profiles.json()[str(stream)]["hour"]
        assert hours[(T0.hour + 9) % 24] == 2.0  # 14:00 UTC is 23:00 KST
        assert client.get("/api/v1/warehouse/patterns/degrading-sensors", headers=auth(operator)).json() == []
        assert client.get("/api/v1/warehouse/patterns/trigger-intensity", headers=auth(citizen)).status_code == 403
        bad = client.get("/api/v1/warehouse/patterns/profiles?property=Water%20Level", headers=auth(operator))
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.property"
