"""Events are a declared vocabulary: every name in one place (``haechi/model/events.py``), and every
producer publishes exactly the payload its type declares.

The source of ``haechi/`` is read (ast) for event names spelt by hand; real producers are triggered
over HTTP, on SQLite and PostgreSQL, and what reaches the bus is held to its TypedDict: the required
keys present, no key undeclared, each value of its declared type.
"""

from __future__ import annotations

import ast
import re
import types
from datetime import timedelta
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints, is_typeddict

import pytest
from care_support import family
from test_api_support import build_world

from haechi.core.clock import utcnow
from haechi.core.events import Event, matches
from haechi.model import events
from haechi.store import places

HAECHI = Path(__file__).resolve().parents[1] / "haechi"
NAME = re.compile(r"^(>|[a-z_]+(\.([a-z_]+|\*|>))+)$")  # an event name or a pattern of names


# ── the names: declared once, spelt nowhere else ────────────────────────────────────────

def spelt_names() -> list[tuple[str, int, str]]:
    """(file, line, text) of every string literal used as an event name or pattern in haechi/:
    ``Event("…")``, ``event("…")``, ``publish(request, "…")``, ``.subscribe("…")``, ``.wants("…")``
    and ``….type == "…"``."""
    found = []
    for path in sorted(HAECHI.rglob("*.py")):
        if path == HAECHI / "model" / "events.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            for text in _names_in(node):
                if NAME.fullmatch(text):
                    found.append((str(path.relative_to(HAECHI.parent)), node.lineno, text))
    return found


def _literal(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _names_in(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Call):
        func = node.func
        called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if called in ("Event", "event", "subscribe", "wants") and node.args:
            return [t for t in [_literal(node.args[0])] if t]
        if called == "publish" and len(node.args) > 1:
            return [t for t in [_literal(node.args[1])] if t]
    if isinstance(node, ast.Compare) and isinstance(node.left, ast.Attribute) and node.left.attr == "type":
        return [t for t in map(_literal, node.comparators) if t]
    return []


def test_every_event_name_in_the_code_is_declared():
    declared = set(events.PAYLOADS)
    unknown = [(f, line, text) for f, line, text in spelt_names()
               if text not in declared and not any(matches(text, name) for name in declared)]
    assert unknown == [], f"event names not declared in haechi/model/events.py: {unknown}"


def test_declared_names_are_used_by_their_constant_not_spelt_again():
    """Anywhere in haechi/, not only where an event is made or subscribed to (a copy of a name in a
    module's own constant, a tuple of names …): the vocabulary is the one place a name is written."""
    spelt = []
    for path in sorted(HAECHI.rglob("*.py")):
        if path != HAECHI / "model" / "events.py":
            spelt += [(str(path.relative_to(HAECHI.parent)), node.lineno, node.value)
                      for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                      if isinstance(node, ast.Constant) and node.value in events.PAYLOADS]
    assert spelt == [], f"spell these with their constant from haechi.model.events: {spelt}"


def test_each_name_has_one_constant_and_a_payload_type():
    constants = {v: k for k, v in vars(events).items() if k.isupper() and isinstance(v, str)}
    assert set(constants) == set(events.PAYLOADS)
    assert all(is_typeddict(kind) for kind in events.PAYLOADS.values())
    assert events.PUBLIC <= set(events.PAYLOADS)
    with pytest.raises(ValueError, match="undeclared event"):
        events.event("observation.stord", {})
    made = events.event(events.UNIT_CHANGED, {"id": 1})
    assert (made.type, made.data) == ("unit.changed", {"id": 1})


# ── the payloads: what producers publish is what the vocabulary says ────────────────────

def assert_declared(event: Event) -> None:
    assert event.type in events.PAYLOADS, f"undeclared event {event.type}"
    _check(events.PAYLOADS[event.type], event.data, event.type)


def _check(kind: type, data: Any, where: str) -> None:
    assert isinstance(data, dict), f"{where}: {type(data).__name__}, not an object"
    missing = kind.__required_keys__ - data.keys()
    undeclared = data.keys() - kind.__required_keys__ - kind.__optional_keys__
    assert not missing and not undeclared, f"{where}: missing {sorted(missing)}, undeclared {sorted(undeclared)}"
    for key, hint in get_type_hints(kind).items():
        if key in data:
            _check_value(hint, data[key], f"{where}.{key}")


def _check_value(hint: Any, value: Any, where: str) -> None:
    assert _fits(hint, value), f"{where}: {value!r} is not {hint}"
    if is_typeddict(hint):
        _check(hint, value, where)
    elif get_origin(hint) is list and is_typeddict(get_args(hint)[0]):
        for i, item in enumerate(value):
            _check(get_args(hint)[0], item, f"{where}[{i}]")


def _fits(hint: Any, value: Any) -> bool:
    origin = get_origin(hint)
    if hint is Any:
        return True
    if origin in (Union, types.UnionType):
        return any(_fits(option, value) for option in get_args(hint))
    if hint is type(None):
        return value is None
    if isinstance(value, bool) and hint in (int, float):
        return False
    if hint is float:
        return isinstance(value, int | float)
    if is_typeddict(hint):
        return isinstance(value, dict)
    return isinstance(value, origin or hint)


class Heard:
    """Everything published on the app's bus, in order."""

    def __init__(self, bus) -> None:
        self.events: list[Event] = []
        bus.subscribe(">", self.hear)

    async def hear(self, event: Event) -> None:
        self.events.append(event)

    def of(self, name: str) -> list[Event]:
        return [e for e in self.events if e.type == name]


STATION = {"kind": "fire_station", "ref": "F-V", "name_ko": "어휘 소방서", "lon": 127.048, "lat": 37.506}
CAMERA = {"kind": "cctv", "ref": "GN-V1", "name_ko": "역삼 방범 CCTV", "area_code": "11680", "lon": 127.0360,
          "lat": 37.5000, "direction_deg": 90.0, "fov_deg": 60.0, "range_m": 80.0}


@pytest.fixture
def world(engine):
    """The app with its services running (the lifespan), and an ear on its bus."""
    world = build_world(engine)
    with engine.begin() as conn:
        places.save_places(conn, [STATION, CAMERA])
    with world.client:
        world.heard = Heard(world.client.app.state.bus)
        yield world


def post(world, path: str, body: Any, role: str = "operator", **headers: str) -> dict[str, Any]:
    response = world.client.post(path, json=body, headers=world.auth(role) | headers)
    assert response.status_code in (200, 201, 202), response.text
    return response.json()


def place_id(world, ref: str) -> int:
    with world.engine.begin() as conn:
        return next(p["id"] for p in places.list_places(conn) if p["ref"] == ref)


def test_response_events_carry_their_declared_payloads(world):
    """Incidents, units, drones (and their telemetry, through the pipeline), CCTV."""
    unit = post(world, "/api/v1/units", {"call_sign": "어휘-1", "unit_type": "pumper",
                                         "station_place_id": place_id(world, "F-V")})
    post(world, f"/api/v1/units/{unit['id']}/position", {"lon": 127.04, "lat": 37.50})
    incident = post(world, "/api/v1/incidents", {"kind": "fire", "lon": 127.036, "lat": 37.5, "title": "역삼동 화재"})
    post(world, f"/api/v1/incidents/{incident['id']}/dispatch", {"unit_ids": [unit["id"]]})
    drone = post(world, "/api/v1/drones", {"call_sign": "어휘-드론", "base_place_id": place_id(world, "F-V")})
    post(world, f"/api/v1/drones/{drone['id']}/assign", {"incident_id": incident["id"]})
    at = utcnow() - timedelta(seconds=30)
    post(world, f"/api/v1/drones/{drone['id']}/telemetry", {"time": at.isoformat(), "lon": 127.037, "lat": 37.501,
                                                            "altitude_m": 60.0, "battery_pct": 80.0}, "device")
    post(world, "/api/v1/observations", [  # a fix straight to its datastreams, as any sensor would send it
        {"datastream_id": drone["datastreams"][code], "phenomenon_time": (at + timedelta(seconds=5)).isoformat(),
         "result": value} for code, value in (("longitude", 127.038), ("latitude", 37.502))], "device")
    world.client.post("/api/v1/cctv/events", headers=world.auth("device"), json={
        "event_id": "vocab-1", "camera_ref": "GN-V1", "type": "smoke_fire", "observed_at": utcnow().isoformat(),
        "lon": 127.0365, "lat": 37.5001, "confidence": 0.9})
    post(world, f"/api/v1/incidents/{incident['id']}/status", {"status": "closed"})

    heard = world.heard
    for name in (events.UNIT_CHANGED, events.INCIDENT_CHANGED, events.DRONE_CHANGED, events.DRONE_POSITION,
                 events.OBSERVATION_STORED, events.CCTV_EVENT):
        assert heard.of(name), f"no {name} heard; heard {[e.type for e in heard.events]}"
    for event in heard.events:
        assert_declared(event)
    assert {o["datastream_id"] for e in heard.of(events.OBSERVATION_STORED) for o in e.data["observations"]} >= {
        drone["datastreams"]["longitude"], drone["datastreams"]["battery_level"]}


def test_care_events_carry_their_declared_payloads(world):
    """An SOS over HTTP raises a care alert; a guardian's missing report opens an incident."""
    f = family(world.engine)
    for kind in ("position", "sos"):
        post(world, f"/api/v1/care/reports/{kind}", {"device": f.devices["tracker"], "at": utcnow().isoformat(),
                                                      "lon": 127.001, "lat": 37.501}, "device")
    response = world.client.post(f"/api/v1/care/wards/{f.ward['id']}/missing",
                                 headers={"Authorization": f"Bearer {f.token}"})
    assert response.status_code == 201, response.text
    heard = world.heard
    assert heard.of(events.CARE_ALERT)
    [opened] = heard.of(events.INCIDENT_CHANGED)  # as every incident opening: the room shows it live
    assert (opened.data["kind"], opened.data["action"], opened.data["center"]) == ("missing_person", "opened", "119")
    for event in heard.events:
        assert_declared(event)


def test_warning_events_carry_their_declared_payloads(world):
    """A warning issued by hand, its alert, and an operator's acknowledgement."""
    issued = post(world, "/api/v1/alerts", {"hazard": "fine_dust", "level": "advisory", "area": "11680",
                                            "value": 160})
    [warning] = [w for w in world.client.get("/api/v1/warnings").json() if w["hazard"] == "fine_dust"]
    post(world, f"/api/v1/warnings/{warning['id']}/acknowledge", {})
    heard = world.heard
    assert [e.data["id"] for e in heard.of(events.ALERT_SENT)] == [issued["id"]]
    assert heard.of(events.WARNING_CHANGED) and heard.of(events.WARNING_ACKNOWLEDGED)
    for event in heard.events:
        assert_declared(event)


def test_forecasts_are_announced_as_stored_observations_with_their_issue_time(engine):
    """The river model run over HTTP: forecasts carry ``result_time``, the declared optional key."""
    from fastapi.testclient import TestClient
    from test_predict_river import feed, provision, scenario

    from haechi.api.app import create_app
    from haechi.store import access

    rows = [r for r in scenario() if "2020-08-06 06:00" <= r["time_kst"] <= "2020-08-06 10:20"]
    with engine.begin() as conn:
        ids = provision(conn)
        feed(conn, ids, rows)
        _, operator = access.create_token(conn, "duty officer", "operator")
    app = create_app(engine)
    heard = Heard(app.state.bus)
    answer = TestClient(app).post("/api/v1/predictions/river", headers={"Authorization": f"Bearer {operator}"})
    assert answer.status_code == 200, answer.text
    [announced] = heard.of(events.OBSERVATION_STORED)
    assert_declared(announced)
    assert all("result_time" in o for o in announced.data["observations"])
