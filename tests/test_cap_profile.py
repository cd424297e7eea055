"""The Google Public Alerts CAP profile: the checker finds what aggregators refuse, and Haechi's own
alerts — composed for the real Seoul pack's areas, and issued over the API — give no error."""

from __future__ import annotations

import re
import tomllib
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from haechi.alerts import issuer
from haechi.alerts.cap import Area, Circle, Reference, from_xml, to_xml, validate
from haechi.alerts.compose import compose, make_identifier
from haechi.alerts.profile import ERROR, RULES, RULES_FILE, check, errors
from haechi.api.app import create_app
from haechi.cities.load import load_city
from haechi.cities.targeting import AreaFacts, area_facts
from haechi.core.clock import KST
from haechi.core.settings import Settings
from haechi.model.hazards import Change
from haechi.store import access, areas
from haechi.warnings.criteria import load_criteria

CRITERIA = load_criteria()
AT = datetime(2024, 7, 10, 14, 20, tzinfo=KST)
SENDER = "haechi@seoul.go.kr"
PUBLIC = "https://alerts.example.go.kr"
SQUARE = ((37.52, 126.95), (37.55, 126.95), (37.55, 127.0), (37.52, 127.0), (37.52, 126.95))


def alert_for(change: Change, area: AreaFacts, previous=None, **kw):
    identifier = make_identifier(change, kw.get("exercise", False), kw.get("test", False))
    return compose(change, area=area, sender=SENDER, now=change.at, previous_alert=previous, identifier=identifier,
                   web=f"{PUBLIC}/alerts/{identifier}.html", **kw)


def chain(criterion, area: AreaFacts, key: str, **kw) -> list:
    """issue → update → cancel of ``criterion`` in ``area``, each referring to the one before."""
    issue = alert_for(Change("issue", criterion.hazard, key, criterion, None, criterion.value, AT, None), area, **kw)
    later = AT + timedelta(hours=1)
    update = alert_for(Change("update", criterion.hazard, key, criterion, criterion, criterion.value * 1.1, later,
                              None), area, issue, **kw)
    cancel = alert_for(Change("cancel", criterion.hazard, key, None, criterion, criterion.value / 2,
                              later + timedelta(hours=1), None), area, update, **kw)
    return [issue, update, cancel]


def rules_hit(alert) -> set[str]:
    return {f.rule for f in check(alert) if f.level == ERROR}


# ── the rules are data, each with its test ──────────────────────────────────────────────────


def test_every_rule_of_the_file_has_a_test_and_a_source():
    with open(RULES_FILE, "rb") as f:
        rules = tomllib.load(f)["rules"]
    assert set(rules) == set(RULES)
    assert all(r["level"] in ("error", "recommendation") and r["source"] and r["message"] for r in rules.values())


# ── the checker finds what aggregators refuse ───────────────────────────────────────────────

@pytest.fixture(scope="module")
def good():
    area = AreaFacts(names={"ko": "용산구", "en": "Yongsan-gu"}, geocodes=("1117000000",), polygons=(SQUARE,))
    return chain(CRITERIA[0], area, "district:11170")


def test_a_composed_chain_passes(good):
    for alert in good:
        assert errors(alert) == [], errors(alert)


@pytest.mark.parametrize(("rule", "spoil"), [
    ("web_is_required", lambda a: _infos(a, web=None)),
    ("web_is_required", lambda a: _infos(a, web="alerts/page.html")),  # not an absolute URL
    ("update_or_cancel_must_reference", lambda a: replace(a, msg_type="Update")),
    ("description_is_required", lambda a: _infos(a, description=" ")),
    ("expires_is_required", lambda a: _infos(a, expires=None)),
    ("effective_not_after_expires", lambda a: _infos(a, expires=a.sent - timedelta(minutes=1))),
    ("event_too_long", lambda a: _infos(a, event="A very long event name that goes on and on")),
    ("area_is_required", lambda a: _infos(a, areas=())),
    ("circle_polygon_or_geocode_is_required", lambda a: _infos(a, areas=(Area(area_desc="nowhere"),))),
    ("polygon_decimals", lambda a: _infos(a, areas=(Area(area_desc="x", polygons=(
        ((37.1234567, 127.0), (37.2, 127.0), (37.2, 127.1), (37.1234567, 127.0)),)),))),
    ("areas_must_be_contiguous", lambda a: _infos(a, areas=(Area(area_desc="x", polygons=(
        SQUARE, tuple((lat + 0.2, lon) for lat, lon in SQUARE))),))),
    ("areas_must_be_contiguous", lambda a: _infos(a, areas=(Area(area_desc="x", polygons=(SQUARE,),
                                                                 circles=(Circle(37.8, 127.5, 1.0),)),))),
    ("categories_must_match", lambda a: replace(a, infos=(a.infos[0], replace(a.infos[1], categories=("Fire",))))),
    ("event_codes_must_match", lambda a: replace(a, infos=(a.infos[0], replace(a.infos[1], event_codes=())))),
    ("info_is_required", lambda a: replace(a, infos=())),
    ("sender_has_no_restricted_characters", lambda a: replace(a, sender="seoul city")),
])
def test_the_checker_finds_each_error(good, rule, spoil):
    assert rule in rules_hit(spoil(good[0]))


def _infos(alert, **changes):
    return replace(alert, infos=tuple(replace(info, **changes) for info in alert.infos))


def test_adjacent_areas_are_one_and_recommendations_are_not_errors(good):
    east = tuple((lat, lon + 0.05) for lat, lon in SQUARE)  # shares the square's eastern edge
    joined = _infos(good[0], areas=(Area(area_desc="x", polygons=(SQUARE, east)),))
    assert "areas_must_be_contiguous" not in rules_hit(joined)
    plain = _infos(good[0], contact=None, instruction=None)
    assert errors(plain) == [] and {"contact_recommended", "instruction_recommended"} <= {f.rule for f in check(plain)}
    test = replace(good[0], status="Test")
    assert errors(test) == [] and "status_test_discouraged" in {f.rule for f in check(test)}


def test_a_reference_names_every_earlier_message(good):
    issue, update, cancel = good
    assert update.references == (issue.reference(),)
    assert cancel.references == (issue.reference(), update.reference())
    assert all(isinstance(r, Reference) for r in cancel.references)


# ── Haechi's alerts for the real city: every area, every hazard and level ──────────────────

@pytest.fixture(scope="module")
def seoul(tmp_path_factory):
    from haechi.store import open_db

    engine = open_db(f"sqlite:///{tmp_path_factory.mktemp('seoul') / 'haechi.db'}")
    load_city(engine, "seoul")
    yield engine
    engine.dispose()


def real_areas(engine) -> dict[str, AreaFacts]:
    """The city, its 25 districts, every dong whose boundary comes in pieces, and the river gauges."""
    from shapely.geometry import shape

    found = {}
    with engine.connect() as conn:
        keys = ["city:11"] + [f"district:{a['code']}" for a in areas.list_areas(conn, level="district")]
        keys += [f"dong:{a['code']}" for a in areas.list_areas(conn, level="dong")
                 if shape(areas.get_area(conn, a["code"])["geometry"]).geom_type != "Polygon"]
        keys += [f"gauge:{c.scope.split(':')[1]}" for c in CRITERIA if c.scope.startswith("gauge:")]
        for key in dict.fromkeys(keys):
            found[key] = area_facts(conn, key, "heavy_rain")
    return found


def test_every_real_area_gives_alerts_without_errors(seoul):
    found = real_areas(seoul)
    assert len(found) > 25 + 10 and sum(len(a.polygons) > 1 for a in found.values()) >= 3  # pieces to join
    heavy_rain = next(c for c in CRITERIA if c.hazard == "heavy_rain")
    for key, facts in found.items():
        for alert in chain(heavy_rain, facts, key):
            assert errors(alert) == [], (key, errors(alert))
            validate(to_xml(alert))


def test_every_hazard_and_level_gives_alerts_without_errors_in_every_mode(seoul):
    with seoul.connect() as conn:
        gangseo = area_facts(conn, "district:11500", "heavy_rain")  # four pieces: the hardest district
    assert len(gangseo.polygons) == 4
    for criterion in CRITERIA:
        for mode in ({}, {"exercise": True}, {"test": True}):
            for alert in chain(criterion, gangseo, "district:11500", **mode):
                assert errors(alert) == [], (criterion.hazard, criterion.level, mode, errors(alert))


def test_alerts_issued_over_the_api_pass_the_profile_and_link_their_page(seoul, tmp_path):
    settings = Settings(public_url=PUBLIC + "/", cap_signing_key=str(tmp_path / "key.pem"))
    with seoul.begin() as conn:
        _, token = access.create_token(conn, "situation room", "operator", center="situation_room")
    client = TestClient(create_app(seoul, settings), headers={"Authorization": f"Bearer {token}"})
    body = {"hazard": "fine_dust", "level": "advisory", "area": "11", "value": 160}
    ids = [client.post("/api/v1/alerts", json=body).json()["id"],
           client.post("/api/v1/alerts", json=body | {"level": "warning", "value": 320}).json()["id"]]
    [warning] = [w for w in client.get("/api/v1/warnings").json() if w["area_key"] == "city:11"]
    ids.append(client.post(f"/api/v1/warnings/{warning['id']}/cancel").json()["id"])
    sent = [from_xml(client.get(f"/api/v1/alerts/{i}.xml").content) for i in ids]
    assert [a.msg_type for a in sent] == ["Alert", "Update", "Cancel"]
    for alert in sent:
        assert errors(alert) == [], errors(alert)
        page = f"{PUBLIC}/alerts/{alert.identifier}.html"
        assert {i.web for i in alert.infos} == {page} == {issuer.current().page_url(alert.identifier)}
        shown = client.get(page.removeprefix(PUBLIC))
        assert shown.status_code == 200 and shown.headers["content-type"].startswith("text/html")
        assert alert.infos[0].headline in shown.text and 'lang="vi"' in shown.text
    assert sent[2].references[-1] == sent[1].reference() and sent[2].references[0] == sent[0].reference()
    assert client.get("/alerts/haechi.nothing.html").status_code == 404


# ── a warning no district holds: recorded, for operators only, never for aggregators ───────


def test_an_unplaced_warnings_alert_is_restricted_and_kept_from_aggregators(seoul, tmp_path):
    import asyncio

    from haechi.bus.memory import InProcessBus
    from haechi.warnings.service import change_warning

    settings = Settings(public_url=PUBLIC + "/", cap_signing_key=str(tmp_path / "key.pem"))
    with seoul.begin() as conn:
        _, token = access.create_token(conn, "situation room", "operator", center="situation_room")
    staff = {"Authorization": f"Bearer {token}"}
    client = TestClient(create_app(seoul, settings))
    public = client.post("/api/v1/alerts", headers=staff, json={
        "hazard": "fine_dust", "level": "advisory", "area": "11110", "value": 160}).json()
    dust = next(c for c in CRITERIA if c.hazard == "fine_dust" and c.level == "advisory")
    now = datetime.now(KST)
    # the engine's advisory from a sensor with no location (its stream is all that names the area)
    nowhere = asyncio.run(change_warning(seoul, InProcessBus(), Change(
        "issue", "fine_dust", "stream:990001", dust, None, 170.0, now, None), sender=SENDER, now=now))

    restricted = from_xml(client.get(f"/api/v1/alerts/{nowhere['id']}.xml", headers=staff).content)
    assert (restricted.scope, restricted.status) == ("Restricted", "Actual")
    assert "Operators only" in restricted.restriction and "the sensor has no location" in restricted.restriction
    assert "(location unknown)" in restricted.infos[1].areas[0].area_desc  # the computed warning, kept whole

    feed = client.get("/alerts/aggregators.atom").text
    assert public["identifier"] in feed and nowhere["identifier"] not in feed
    received = sorted(set(re.findall(r"/api/v1/alerts/(\d+)\.xml", feed)))
    assert str(public["id"]) in received
    for alert_id in received:  # what aggregators fetch, each without an error
        assert errors(from_xml(client.get(f"/api/v1/alerts/{alert_id}.xml").content)) == []
    assert nowhere["identifier"] not in client.get("/alerts.atom").text
    assert nowhere["identifier"] not in client.get("/alerts/11110.atom").text
    assert nowhere["id"] not in [a["id"] for a in client.get("/api/v1/alerts?limit=200").json()]
    assert client.get(f"/api/v1/alerts/{nowhere['id']}.xml").status_code == 404  # only staff read it
    assert client.get(f"/alerts/{nowhere['identifier']}.html").status_code == 404
    assert nowhere["id"] in [a["id"] for a in client.get("/api/v1/alerts?limit=200", headers=staff).json()]
