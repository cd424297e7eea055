"""The owner publishes: a warning changed by hand (or re-announced by the refresher) is on the live
stream as ``warning.changed``, then ``alert.sent``, as when the engine changes it; and the arrow
between the two capabilities goes one way, warnings → alerts."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import grimp
import httpx
from conftest import LiveServer, SseListener
from fastapi.testclient import TestClient

from haechi.api.app import create_app
from haechi.bus.memory import InProcessBus
from haechi.cities.load import load_city
from haechi.model.events import ALERT_SENT, WARNING_CHANGED
from haechi.store import access
from haechi.warnings.service import WarningService

RAIN = {"hazard": "heavy_rain", "level": "advisory", "area": "11590", "value": 72.5}


def test_an_alert_by_hand_is_a_warning_change_on_the_live_stream(sqlite_engine):
    load_city(sqlite_engine, "seoul")
    with sqlite_engine.begin() as conn:
        _, token = access.create_token(conn, "situation room", "operator", center="situation_room")
    operator = {"Authorization": f"Bearer {token}"}

    def issued_and_cancelled(seen):
        return sum(1 for e, _ in seen if e == ALERT_SENT) == 2

    with (LiveServer(create_app(sqlite_engine)) as server,
          SseListener(f"{server.url}/api/v1/stream?types=warning.>,alert.>", issued_and_cancelled,
                      timeout=30) as listener):
        issued = httpx.post(f"{server.url}/api/v1/alerts", json=RAIN, headers=operator)
        assert issued.status_code == 201, issued.text
        [warning] = httpx.get(f"{server.url}/api/v1/warnings").json()
        cancelled = httpx.post(f"{server.url}/api/v1/warnings/{warning['id']}/cancel", headers=operator)
        assert cancelled.status_code == 201, cancelled.text

    assert [e for e, _ in listener.seen] == [WARNING_CHANGED, ALERT_SENT, WARNING_CHANGED, ALERT_SENT]
    (_, issue), (_, issue_alert), (_, cancel), (_, cancel_alert) = listener.seen
    assert (issue["kind"], issue["hazard"], issue["area"], issue["level"]) == (
        "issue", "heavy_rain", "district:11590", "advisory")
    assert (issue["warning_id"], issue["area_code"], issue["value"], issue["exercise"]) == (
        warning["id"], "11590", 72.5, False)
    assert (issue["alert"], issue["alert_id"]) == (issued.json()["identifier"], issued.json()["id"]) == (
        issue_alert["identifier"], issue_alert["id"])
    assert (cancel["kind"], cancel["hazard"], cancel["area"], cancel["level"]) == (
        "cancel", "heavy_rain", "district:11590", None)
    assert cancel["warning_id"] == warning["id"] and cancel["alert"] == cancelled.json()["identifier"]
    assert cancel_alert["msg_type"] == "Cancel"


def test_a_drill_by_hand_and_its_refresh_are_warning_changes_too(sqlite_engine):
    load_city(sqlite_engine, "seoul")
    with sqlite_engine.begin() as conn:
        _, token = access.create_token(conn, "situation room", "operator", center="situation_room")
    bus, seen = InProcessBus(), []

    async def collect(event):
        seen.append((event.type, event.data))

    bus.subscribe("warning.>", collect)
    bus.subscribe("alert.>", collect)
    client = TestClient(create_app(sqlite_engine, bus=bus))
    soon = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    drill = RAIN | {"exercise": True, "expires": soon}
    assert client.post("/api/v1/alerts", json=drill, headers={"Authorization": f"Bearer {token}"}).status_code == 201
    assert [(e, d.get("kind"), d.get("exercise")) for e, d in seen] == [
        (WARNING_CHANGED, "issue", True), (ALERT_SENT, None, None)]

    seen.clear()
    assert asyncio.run(WarningService(sqlite_engine, bus).refresh()) == 1  # its alert expires within 15 min
    [(changed, update), (sent, alert)] = seen
    assert (changed, update["kind"], update["exercise"], update["level"]) == (WARNING_CHANGED, "update", True,
                                                                              "advisory")
    assert (sent, alert["msg_type"], alert["status"]) == (ALERT_SENT, "Update", "Exercise")
    assert update["alert"] == alert["identifier"]


def test_alerts_import_nothing_from_warnings():
    graph = grimp.build_graph("haechi")
    alerts = {m for m in graph.modules if m == "haechi.alerts" or m.startswith("haechi.alerts.")}
    imported = {i for m in alerts for i in graph.find_modules_directly_imported_by(m)}
    assert sorted(i for i in imported if i.startswith("haechi.warnings")) == []
    assert not graph.chain_exists("haechi.alerts", "haechi.warnings", as_packages=True)
