"""A small sensor network behind the SensorThings API, for the ``test_sensorthings*`` modules.

It holds no tests itself. Everything is created through the API the way an integrator would:
two Things by deep insert, one more Datastream linked by id, observations by CreateObservations.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from haechi.api import create_app
from haechi.cities.provision import save_catalogue
from haechi.store import access

STA = "/sta/v1.1"
BASE = "http://testserver" + STA
T0 = datetime(2020, 8, 6, 5, 0, tzinfo=UTC)  # the 2020 monsoon flood on the Han


def at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def point(lon: float, lat: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [lon, lat]}


def datastream(name: str, unit: tuple[str, str], observed_property: dict[str, Any], **more) -> dict[str, Any]:
    return {
        "name": name, "description": f"{name} stream",
        "observationType": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement",
        "unitOfMeasurement": {"name": unit[0], "symbol": unit[1], "definition": f"ucum:{unit[1]}"},
        "Sensor": {"name": f"{name} sensor", "description": "radar gauge", "encodingType": "text/html",
                   "metadata": "https://example.org/gauge"},
        "ObservedProperty": observed_property, **more,
    }


@dataclass
class Network:
    """A client over a DB with two gauges, tokens, and the ids the API gave out."""

    engine: Engine
    client: TestClient
    tokens: dict[str, str]
    property_ids: dict[str, int]

    def auth(self, role: str = "device") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def get(self, path: str, **params) -> Any:
        response = self.client.get(STA + path, params=params or None)
        assert response.status_code == 200, response.text
        return response.json()

    def post(self, path: str, body: Any, role: str = "device", status: int = 201):
        response = self.client.post(STA + path, json=body, headers=self.auth(role))
        assert response.status_code == status, response.text
        return response

    def observe(self, stream: int, rows: list[list[Any]], components=("phenomenonTime", "result")) -> list[str]:
        body = [{"Datastream": {"@iot.id": stream}, "components": list(components), "dataArray": rows}]
        return self.post("/CreateObservations", body).json()


def build_network(engine: Engine, **app_options) -> Network:
    with engine.begin() as conn:
        property_ids = save_catalogue(conn)
        tokens = {role: access.create_token(conn, f"{role}-1", role)[1]
                  for role in ("admin", "operator", "device", "citizen")}
    client = TestClient(create_app(engine, **app_options))
    network = Network(engine, client, tokens, property_ids)
    water_level = {"@iot.id": property_ids["water_level"]}
    network.post("/Things", {
        "name": "Hangang Bridge", "description": "한강대교 수위관측소", "properties": {"river": "Han", "grade": 1},
        "Locations": [{"name": "한강대교", "description": "Hangang Bridge gauge",
                       "encodingType": "application/geo+json", "location": point(126.9567, 37.5144)}],
        "Datastreams": [
            datastream("Hangang water level", ("metre", "m"), water_level),
            datastream("Hangang rainfall", ("millimetre", "mm"), {
                "name": "Rainfall", "definition": "http://qudt.org/vocab/quantitykind/Length",
                "description": "rain over the interval"}),
        ],
    })
    network.post("/Things", {
        "name": "Jamsu Bridge", "description": "잠수교 수위관측소", "properties": {"river": "Han", "grade": 2},
        "Locations": [{"name": "잠수교", "description": "Jamsu Bridge gauge",
                       "encodingType": "application/geo+json", "location": point(126.9958, 37.5133)}],
    })
    network.post("/Things(2)/Datastreams", datastream("Jamsu water level", ("metre", "m"), water_level))
    network.observe(1, [[at(10 * i), 8.0 + 0.1 * i] for i in range(12)])  # 8.0 … 9.1 m
    network.observe(2, [[at(0), 3.5], [at(60), 12.0], [at(120), 0.0]])
    network.observe(3, [[at(10 * i), 6.0 + 0.2 * i] for i in range(5)])
    return network


def assert_problem(response, status: int, field: str | None = None) -> dict[str, Any]:
    """RFC 9457 problem+json with ``status``, naming ``field`` among its errors."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == status and problem["detail"]
    if field is not None:
        assert field in {e["field"] for e in problem.get("errors", [])}, problem
    return problem
