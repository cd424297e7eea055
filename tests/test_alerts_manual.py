"""Alerts by hand: issue, update, cancel and drills; bad requests refused with the field named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from haechi.alerts.cap import from_xml, validate
from haechi.api.app import create_app
from haechi.cities.load import load_city
from haechi.cli import app as cli
from haechi.store import access


@pytest.fixture
def world(engine):
    load_city(engine, "seoul")
    with engine.begin() as conn:
        _, operator = access.create_token(conn, "situation room", "operator", center="situation_room")
        _, citizen = access.create_token(conn, "someone", "citizen")
        _, official = access.create_token(conn, "gangnam", "district_official", area_code="11680")
    client = TestClient(create_app(engine))
    auth = {name: {"Authorization": f"Bearer {token}"} for name, token in
            (("operator", operator), ("citizen", citizen), ("official", official))}
    return client, auth


RAIN = {"hazard": "heavy_rain", "level": "advisory", "area": "11590", "value": 72.5}


def test_issue_update_and_cancel_by_hand(world):
    client, auth = world
    issued = client.post("/api/v1/alerts", json=RAIN, headers=auth["operator"])
    assert issued.status_code == 201, issued.text
    assert (issued.json()["msg_type"], issued.json()["status"]) == ("Alert", "Actual")
    xml = client.get(f"/api/v1/alerts/{issued.json()['id']}.xml").content
    validate(xml)
    cap = from_xml(xml)
    assert {i.language for i in cap.infos} == {"ko-KR", "en-US", "zh-CN", "ja-JP", "vi-VN"}
    assert any("72.5" in (i.description or "") for i in cap.infos)

    updated = client.post("/api/v1/alerts", json=RAIN | {"level": "warning", "value": 95}, headers=auth["operator"])
    assert updated.json()["msg_type"] == "Update"
    [warning] = client.get("/api/v1/warnings").json()
    assert (warning["hazard"], warning["level"], warning["crisis_level_ko"]) == ("heavy_rain", "warning", "경계")

    cancelled = client.post(f"/api/v1/warnings/{warning['id']}/cancel", headers=auth["operator"])
    assert cancelled.json()["msg_type"] == "Cancel"
    assert client.get("/api/v1/warnings").json() == []
    again = client.post(f"/api/v1/warnings/{warning['id']}/cancel", headers=auth["operator"])
    assert again.status_code == 409


def test_a_drill_is_an_exercise_everywhere_and_not_a_public_warning(world):
    client, auth = world
    drill = client.post("/api/v1/alerts", json=RAIN | {"exercise": True}, headers=auth["operator"])
    assert drill.json()["status"] == "Exercise"
    cap = from_xml(client.get(f"/api/v1/alerts/{drill.json()['id']}.xml", headers=auth["operator"]).content)
    assert cap.status == "Exercise" and all(i.headline.startswith("[") for i in cap.infos)
    assert client.get("/api/v1/warnings").json() == []  # drills never show as warnings in force


@pytest.mark.parametrize(("change", "field"), [
    ({"area": None}, "body.area"),
    ({"area": "99999"}, "body.area"),
    ({"area": "1168"}, "body.area"),
    ({"languages": ["ko", "fr"]}, "body.languages.1"),
    ({"expires": (datetime.now(UTC) - timedelta(hours=1)).isoformat()}, "body.expires"),
    ({"hazard": "volcano"}, "body.hazard"),
    ({"level": "catastrophic"}, "body.level"),
    ({"colour": "red"}, "body.colour"),
])
def test_bad_manual_alerts_are_refused_naming_the_field(world, change, field):
    client, auth = world
    body = {k: v for k, v in (RAIN | change).items() if v is not None}
    answer = client.post("/api/v1/alerts", json=body, headers=auth["operator"])
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert field in answer.text


def test_only_operators_and_officials_in_their_district_issue_alerts(world):
    client, auth = world
    assert client.post("/api/v1/alerts", json=RAIN).status_code == 401
    assert client.post("/api/v1/alerts", json=RAIN, headers=auth["citizen"]).status_code == 403
    assert client.post("/api/v1/alerts", json=RAIN, headers=auth["official"]).status_code == 403  # not Gangnam
    own = client.post("/api/v1/alerts", json=RAIN | {"area": "11680"}, headers=auth["official"])
    assert own.status_code == 201
    city_wide = RAIN | {"hazard": "fine_dust", "level": "advisory", "area": "11", "value": 160}
    assert client.post("/api/v1/alerts", json=city_wide, headers=auth["official"]).status_code == 403


def test_an_official_lifts_only_the_warnings_of_their_own_district(world):
    client, auth = world
    client.post("/api/v1/alerts", json=RAIN, headers=auth["operator"])  # Dongjak
    client.post("/api/v1/alerts", json={"hazard": "fine_dust", "level": "advisory", "area": "11", "value": 160},
                headers=auth["operator"])
    client.post("/api/v1/alerts", json=RAIN | {"area": "11680"}, headers=auth["official"])
    by_area = {w["area_key"]: w["id"] for w in client.get("/api/v1/warnings").json()}
    for elsewhere in ("district:11590", "city:11"):
        refused = client.post(f"/api/v1/warnings/{by_area[elsewhere]}/cancel", headers=auth["official"])
        assert refused.status_code == 403 and "path.warning_id" in refused.text
    lifted = client.post(f"/api/v1/warnings/{by_area['district:11680']}/cancel", headers=auth["official"])
    assert lifted.status_code == 201 and lifted.json()["msg_type"] == "Cancel"
    assert {w["area_key"] for w in client.get("/api/v1/warnings").json()} == {"district:11590", "city:11"}


def test_an_operator_issues_a_city_wide_alert_reaching_every_district(world):
    client, auth = world
    body = {"hazard": "fine_dust", "level": "advisory", "area": "11", "value": 160}
    issued = client.post("/api/v1/alerts", json=body, headers=auth["operator"])
    assert issued.status_code == 201, issued.text
    [warning] = client.get("/api/v1/warnings").json()
    assert warning["area_key"] == "city:11"
    cap = from_xml(client.get(f"/api/v1/alerts/{issued.json()['id']}.xml").content)
    districts = {g.value[:5] for g in cap.infos[0].areas[0].geocodes if g.value.endswith("00000")}
    assert len(districts) == 25 and {"11110", "11680", "11740"} <= districts


def test_the_cli_issues_and_refuses(sqlite_engine, tmp_path, monkeypatch):
    url = str(sqlite_engine.url)
    monkeypatch.setenv("HAECHI_DATABASE_URL", url)
    load_city(sqlite_engine, "seoul")
    runner = CliRunner()
    made = runner.invoke(cli, ["alert", "issue", "--hazard", "fine_dust", "--level", "warning", "--area", "11110",
                               "--value", "320", "--exercise"])
    assert made.exit_code == 0, made.output
    assert "Exercise" in made.output
    with sqlite_engine.connect() as conn:
        assert [e["action"] for e in access.audit_trail(conn)][:1] == ["alert.issue"]
    refused = runner.invoke(cli, ["alert", "issue", "--hazard", "fine_dust", "--level", "warning", "--area", "12345"])
    assert refused.exit_code == 2 and "no city, district or dong 12345" in refused.output


def test_a_warning_in_force_is_reannounced_before_its_alert_expires(world, engine):
    import asyncio

    from haechi.bus.memory import InProcessBus
    from haechi.warnings.service import WarningService

    client, auth = world
    soon = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    first = client.post("/api/v1/alerts", json=RAIN | {"expires": soon}, headers=auth["operator"]).json()
    bus, sent = InProcessBus(), []

    async def collect(event):
        sent.append(event.data)

    bus.subscribe("alert.sent", collect)
    service = WarningService(engine, bus)
    assert asyncio.run(service.refresh()) == 1
    [update] = sent
    assert update["msg_type"] == "Update" and update["identifier"] != first["identifier"]
    cap = from_xml(client.get(f"/api/v1/alerts/{update['id']}.xml").content)
    assert cap.references[-1].identifier == first["identifier"]
    assert asyncio.run(service.refresh()) == 0  # the new alert runs for the hazard's default (3 h)


def test_the_criteria_are_public_with_their_sources(world):
    client, _ = world
    rules = client.get("/api/v1/criteria").json()
    hangang = [r for r in rules if r["scope"] == "gauge:1018683"]
    assert {(r["level"], r["value"]) for r in hangang} >= {("advisory", 8.5), ("warning", 10.5)}
    assert all(r["source"] and r["crisis_level_ko"] in {"관심", "주의", "경계", "심각"} for r in rules)


# ── Test messages: end-to-end checks with an aggregator, never for citizens ─────────────────


def statuses(parsed) -> set[str]:
    return {t.term for e in parsed.entries for t in e.tags if t.scheme.endswith(":status")}


def test_a_test_alert_reaches_the_aggregators_feed_and_no_citizen_channel(world, engine):
    import feedparser
    from sqlalchemy import func, insert, select
    from test_channels_support import subscription_row

    from haechi.store.schema import deliveries, subscriptions

    client, auth = world
    with engine.begin() as conn:  # a receiver that even takes drills
        conn.execute(insert(subscriptions).values(**subscription_row("sns", "https://sns.example/hook",
                                                                     include_exercises=True)))
    issued = client.post("/api/v1/alerts", json=RAIN | {"test": True}, headers=auth["operator"])
    assert issued.status_code == 201, issued.text
    assert (issued.json()["status"], issued.json()["msg_type"]) == ("Test", "Alert")
    assert issued.json()["identifier"].endswith(".test")
    cap = from_xml(client.get(f"/api/v1/alerts/{issued.json()['id']}.xml").content)  # anyone may fetch it
    assert cap.status == "Test" and cap.infos[0].headline.startswith("[시험] ")
    assert cap.infos[1].headline.startswith("[TEST] ") and "[TEST]" in cap.note

    assert client.get("/api/v1/warnings").json() == []  # not in force for the portal, the map or care
    assert client.get("/api/v1/alerts").json() == []  # the portal's list
    for path in ("/alerts.atom", "/alerts/11590.atom"):
        assert feedparser.parse(client.get(path).content).entries == []
    aggregators = feedparser.parse(client.get("/alerts/aggregators.atom").content)
    assert statuses(aggregators) == {"Test"} and aggregators.entries[0].title.startswith("[시험] ")
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(deliveries)).scalar() == 0  # no webhook

    # A test goes the whole way: an update and the all-clear are tests too, each referring back.
    updated = client.post("/api/v1/alerts", json=RAIN | {"level": "warning", "test": True}, headers=auth["operator"])
    assert (updated.json()["status"], updated.json()["msg_type"]) == ("Test", "Update")
    cancelled = client.post(f"/api/v1/warnings/{_warning_of(engine, issued.json()['id'])}/cancel",
                            headers=auth["operator"])
    assert (cancelled.json()["status"], cancelled.json()["msg_type"]) == ("Test", "Cancel")
    cancel = from_xml(client.get(f"/api/v1/alerts/{cancelled.json()['id']}.xml").content)
    assert [r.identifier for r in cancel.references] == [issued.json()["identifier"], updated.json()["identifier"]]
    assert statuses(feedparser.parse(client.get("/alerts/aggregators.atom").content)) == {"Test"}

    drill = client.post("/api/v1/alerts", json=RAIN | {"area": "11680", "exercise": True}, headers=auth["operator"])
    with engine.connect() as conn:  # the same receiver does get a drill: it is the status that keeps tests out
        assert conn.execute(select(func.count()).select_from(deliveries)).scalar() == 1
    assert drill.json()["status"] == "Exercise"


def _warning_of(engine, alert_id: int) -> int:
    from sqlalchemy import select

    from haechi.store.schema import alerts

    with engine.connect() as conn:
        return conn.execute(select(alerts.c.warning_id).where(alerts.c.id == alert_id)).scalar_one()


def test_real_and_practice_messages_never_update_each_other(world):
    client, auth = world
    both = client.post("/api/v1/alerts", json=RAIN | {"test": True, "exercise": True}, headers=auth["operator"])
    assert both.status_code == 422 and "body.test" in both.text
    assert client.post("/api/v1/alerts", json=RAIN | {"test": True}, headers=auth["operator"]).status_code == 201
    real = client.post("/api/v1/alerts", json=RAIN | {"level": "warning"}, headers=auth["operator"])
    assert real.status_code == 409 and "cancel it first" in real.text
    other_area = client.post("/api/v1/alerts", json=RAIN | {"area": "11680"}, headers=auth["operator"])
    assert (other_area.status_code, other_area.json()["status"]) == (201, "Actual")
    drill_over_real = client.post("/api/v1/alerts", json=RAIN | {"area": "11680", "exercise": True},
                                  headers=auth["operator"])
    assert drill_over_real.status_code == 409


def test_the_cli_issues_a_test(sqlite_engine, monkeypatch):
    monkeypatch.setenv("HAECHI_DATABASE_URL", str(sqlite_engine.url))
    load_city(sqlite_engine, "seoul")
    made = CliRunner().invoke(cli, ["alert", "issue", "--hazard", "heavy_rain", "--level", "advisory",
                                    "--area", "11590", "--test"])
    assert made.exit_code == 0, made.output
    assert "(Test)" in made.output
    with sqlite_engine.connect() as conn:
        [(status, xml)] = conn.exec_driver_sql("SELECT status, cap_xml FROM alerts").all()
    assert status == "Test" and "<status>Test</status>" in xml
    validate(xml)
