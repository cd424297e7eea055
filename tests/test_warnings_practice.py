"""Real and practice warnings never stand for each other, whoever changes them: the engine raising a
warning where an operator's drill or test is in force, and the refresher re-announcing a test."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from haechi.alerts.cap import from_xml
from haechi.api.app import create_app
from haechi.bus.memory import InProcessBus
from haechi.cities.load import load_city
from haechi.model.hazards import Change
from haechi.store import access
from haechi.store import warnings as store
from haechi.warnings.manual import criterion_for
from haechi.warnings.service import WarningService, change_warning, record_change

RAIN = {"hazard": "heavy_rain", "level": "advisory", "area": "11590", "value": 72.5}
SENDER = "haechi@seoul.go.kr"


@pytest.fixture
def world(engine):
    load_city(engine, "seoul")
    with engine.begin() as conn:
        _, operator = access.create_token(conn, "situation room", "operator", center="situation_room")
    return TestClient(create_app(engine)), {"Authorization": f"Bearer {operator}"}


def engine_change(kind: str, level: str, at: datetime) -> Change:
    """What the rule engine decides for a rain gauge of Dongjak-gu (11590), as it hands it over."""
    criterion = criterion_for("heavy_rain", level)
    return Change(kind, "heavy_rain", "district:11590", criterion if kind != "cancel" else None,
                  criterion if kind != "issue" else None, 80.0, at, None)


@pytest.mark.parametrize("practice", ["exercise", "test"])
def test_the_engine_raises_an_actual_warning_beside_a_drill_or_test_in_force(world, engine, practice):
    client, operator = world
    drill = client.post("/api/v1/alerts", json=RAIN | {practice: True}, headers=operator).json()
    now = datetime.now(UTC)

    issued = asyncio.run(change_warning(engine, InProcessBus(), engine_change("issue", "warning", now),
                                        sender=SENDER, now=now))

    assert (issued["status"], issued["msg_type"]) == ("Actual", "Alert")
    actual = from_xml(client.get(f"/api/v1/alerts/{issued['id']}.xml").content)
    assert actual.references == ()  # it refers to no drill message
    [public] = client.get("/api/v1/warnings").json()  # the citizens' list: the actual warning alone
    assert (public["level"], public["exercise"]) == ("warning", False)
    with engine.connect() as conn:
        kept = store.active_warning(conn, "heavy_rain", "district:11590", practice=True)
        drill_messages = store.latest_alert_of(conn, kept["id"])
    assert (kept["level"], kept["exercise"]) == ("advisory", True)  # the drill as the operator left it
    assert drill_messages["identifier"] == drill["identifier"]  # and no message of the engine's in its chain

    later = now + timedelta(hours=1)
    lifted = asyncio.run(change_warning(engine, InProcessBus(), engine_change("cancel", "warning", later),
                                        sender=SENDER, now=later))
    assert (lifted["status"], lifted["msg_type"]) == ("Actual", "Cancel")
    assert client.get("/api/v1/warnings", headers=operator).json() == []  # (with a token: not a cached answer)
    with engine.connect() as conn:
        assert store.active_warning(conn, "heavy_rain", "district:11590", practice=True)["id"] == kept["id"]


def test_two_engines_refreshing_a_test_at_once_store_one_update(world, engine):
    client, operator = world
    soon = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    first = client.post("/api/v1/alerts", json=RAIN | {"test": True, "expires": soon}, headers=operator).json()
    now = datetime.now(UTC)
    one, other = WarningService(engine, InProcessBus(), now=lambda: now), WarningService(engine, InProcessBus())
    [due] = one.due_for_refresh(now)
    assert other.due_for_refresh(now) == [due]  # both see it due before either records it

    change, exercise, test = due
    recorded = [record_change(engine, change, sender=SENDER, now=now, exercise=exercise, test=test)
                for _ in range(2)]  # the second is the other engine, a moment later

    assert [r.new for r in recorded] == [True, False]
    assert recorded[0].alert["identifier"] == recorded[1].alert["identifier"]
    assert recorded[0].alert["identifier"].endswith(".test") and recorded[0].alert["status"] == "Test"
    assert recorded[0].alert["msg_type"] == "Update" and first["status"] == "Test"
