"""Public alerts over HTTP: Atom feeds read by feedparser, CAP XML and JSON (SQLite, PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import feedparser
import pytest
from test_api_support import assert_problem, build_world
from test_channels_support import BASE_TIME, TEXTS, insert_alert

from haechi.model.events import ALERT_SENT, event


@pytest.fixture
def world(engine):
    world = build_world(engine)
    hour = timedelta(hours=1)
    world.alerts = {
        "gangnam": insert_alert(engine, "gn-1", codes=["1168010100"], sent=BASE_TIME),
        "jongno": insert_alert(engine, "jn-1", codes=["11110"], sent=BASE_TIME + hour),
        "seoul": insert_alert(engine, "se-1", codes=["11"], sent=BASE_TIME + 2 * hour,
                              hazard="fine_dust"),
        "drill": insert_alert(engine, "dr-1", codes=["11680"], sent=BASE_TIME + 3 * hour,
                              status="Exercise"),
        "test": insert_alert(engine, "ts-1", codes=["11680"], sent=BASE_TIME + 4 * hour,
                             status="Test"),
        "draft": insert_alert(engine, "df-1", codes=["11680"], sent=BASE_TIME + 5 * hour,
                              status="Draft"),
    }
    return world


def feed(world, path, **params):
    response = world.client.get(path, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/atom+xml"
    parsed = feedparser.parse(response.content)
    assert not parsed.bozo, parsed.get("bozo_exception")
    return parsed


def cap_link(entry) -> str:
    return next(link.href for link in entry.links if link.type == "application/cap+xml")


# ── feeds ───────────────────────────────────────────────────────────────────────────────


def test_city_feed_lists_actual_alerts_newest_first(world):
    parsed = feed(world, "/alerts.atom")
    assert parsed.version == "atom10"
    assert parsed.feed.title == "서울특별시 재난 경보"
    assert [cap_link(e).rsplit("/", 1)[1] for e in parsed.entries] == [
        f"{world.alerts[k]}.xml" for k in ("seoul", "jongno", "gangnam")
    ]
    assert parsed.feed.updated == "2024-07-10T07:00:00Z"  # the newest entry's
    assert all("[훈련]" not in e.title for e in parsed.entries)
    assert any(link.rel == "self" for link in parsed.feed.links)


def test_each_entry_links_its_cap_xml_served_as_cap(world):
    entry = feed(world, "/alerts.atom").entries[-1]
    assert entry.title == TEXTS["ko-KR"][0] and entry.summary == TEXTS["ko-KR"][1]
    assert {t.term for t in entry.tags} == {"heavy_rain", "Actual"}
    response = world.client.get(cap_link(entry))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/cap+xml"
    assert response.text.startswith("<?xml") and "<identifier>gn-1</identifier>" in response.text


def test_lang_picks_the_language_of_titles(world):
    parsed = feed(world, "/alerts.atom", lang="en")
    assert parsed.feed.title == "Seoul alerts"
    assert {e.title for e in parsed.entries} == {TEXTS["en-US"][0]}
    assert feed(world, "/alerts.atom", lang="en-GB").entries[0].title == TEXTS["en-US"][0]


def test_district_feed_has_alerts_inside_or_covering_the_district(world):
    parsed = feed(world, "/alerts/11680.atom")
    assert parsed.feed.title == "강남구 재난 경보"
    linked = {cap_link(e).rsplit("/", 1)[1] for e in parsed.entries}
    assert linked == {f"{world.alerts['gangnam']}.xml", f"{world.alerts['seoul']}.xml"}
    jongno = feed(world, "/alerts/11110.atom", lang="en")
    assert jongno.feed.title == "Jongno-gu alerts"
    assert len(jongno.entries) == 2  # its own alert and the Seoul-wide one


def test_drills_appear_only_when_asked_for_and_are_marked(world):
    parsed = feed(world, "/alerts.atom", status="Exercise")
    assert parsed.feed.title == "서울특별시 재난 경보 (훈련)"
    [entry] = parsed.entries
    assert entry.title == f"[훈련] {TEXTS['ko-KR'][0]}"
    assert {t.term for t in entry.tags} == {"heavy_rain", "Exercise"}
    english = feed(world, "/alerts/11680.atom", status="Exercise", lang="en")
    assert english.entries[0].title == f"[EXERCISE] {TEXTS['en-US'][0]}"


def test_test_messages_are_never_in_a_public_feed(world):
    assert_problem(world.client.get("/alerts.atom", params={"status": "Test"}), 422, "query.status")
    assert_problem(world.client.get("/api/v1/alerts", params={"status": "Test"}), 422, "query.status")
    everything = [feed(world, "/alerts.atom"), feed(world, "/alerts/11680.atom"),
                  feed(world, "/alerts.atom", status="Exercise")]
    assert not any("Test" in {t.term for t in e.tags} for parsed in everything for e in parsed.entries)
    assert "ts-1" not in {a["identifier"] for a in world.client.get("/api/v1/alerts").json()}


def test_aggregators_get_actual_alerts_and_tests_marked_as_such(world):
    parsed = feed(world, "/alerts/aggregators.atom")
    statuses = {e.id: {t.term for t in e.tags} & {"Actual", "Exercise", "Test", "Draft"} for e in parsed.entries}
    assert sorted(map(min, statuses.values())) == ["Actual", "Actual", "Actual", "Test"]  # no drill, no draft
    test_entry = next(e for e in parsed.entries if "Test" in {t.term for t in e.tags})
    assert test_entry.title.startswith("[시험] ")
    english = feed(world, "/alerts/aggregators.atom", lang="en")
    assert any(e.title.startswith("[TEST] ") for e in english.entries)
    # The aggregator fetches the Test message by its link, without credentials.
    response = world.client.get(cap_link(test_entry))
    assert response.status_code == 200 and "<status>Test</status>" in response.text


@pytest.mark.parametrize(
    ("path", "params", "status", "field"),
    [
        ("/alerts/11999.atom", {}, 404, None),
        ("/alerts/gangnam.atom", {}, 422, "path.district_code"),
        ("/alerts.atom", {"lang": "english!"}, 422, "query.lang"),
        ("/alerts.atom", {"limit": 0}, 422, "query.limit"),
        ("/alerts.atom", {"colour": "red"}, 422, "query.colour"),
    ],
)
def test_bad_feed_requests_get_problems(world, path, params, status, field):
    assert_problem(world.client.get(path, params=params), status, *([field] if field else []))


def test_feeds_answer_conditional_requests(world):
    first = world.client.get("/alerts.atom")
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    assert modified == "Wed, 10 Jul 2024 07:00:00 GMT"
    again = world.client.get("/alerts.atom", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    since = {"If-Modified-Since": modified}
    assert world.client.get("/alerts.atom", headers=since).status_code == 304
    # A new alert changes the feed (announced as the composer does): the old validators no longer match.
    new_id = insert_alert(world.engine, "gn-2", sent=BASE_TIME + timedelta(days=1))
    asyncio.run(world.client.app.state.bus.publish(event(ALERT_SENT, {"id": new_id, "identifier": "gn-2"})))
    changed = world.client.get("/alerts.atom", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert world.client.get(
        "/alerts.atom", headers={"If-Modified-Since": modified}
    ).status_code == 200


# ── JSON and CAP XML ────────────────────────────────────────────────────────────────────


def test_alert_list_is_public_and_actual_only_by_default(world):
    response = world.client.get("/api/v1/alerts")
    assert response.status_code == 200
    listed = response.json()
    assert [a["identifier"] for a in listed] == ["se-1", "jn-1", "gn-1"]
    assert listed[0]["sent"] == "2024-07-10T07:00:00Z"
    assert listed[0]["links"]["cap_xml"].endswith(f"/api/v1/alerts/{world.alerts['seoul']}.xml")
    assert "cap" not in listed[0] and "cap_xml" not in listed[0]
    drills = world.client.get("/api/v1/alerts", params={"status": "Exercise"}).json()
    assert [a["identifier"] for a in drills] == ["dr-1"]


@pytest.mark.parametrize(
    ("params", "identifiers"),
    [
        ({"area": "11680"}, ["se-1", "gn-1"]),
        ({"area": "1168010100"}, ["se-1", "gn-1"]),
        ({"area": "11110"}, ["se-1", "jn-1"]),
        ({"hazard": "fine_dust"}, ["se-1"]),
        ({"since": "2024-07-10T15:00:00+09:00"}, ["se-1", "jn-1"]),
        ({"limit": 1, "offset": 1}, ["jn-1"]),
    ],
)
def test_alert_list_filters(world, params, identifiers):
    listed = world.client.get("/api/v1/alerts", params=params).json()
    assert [a["identifier"] for a in listed] == identifiers


def test_one_alert_as_json_carries_its_cap_content(world):
    alert_id = world.alerts["gangnam"]
    response = world.client.get(f"/api/v1/alerts/{alert_id}")
    assert response.status_code == 200
    alert = response.json()
    assert alert["identifier"] == "gn-1" and alert["area_codes"] == ["1168010100"]
    assert alert["cap"]["info"][0]["headline"] == TEXTS["ko-KR"][0]
    assert alert["affected"]["people"] == 536107
    assert alert["links"]["json"].endswith(f"/api/v1/alerts/{alert_id}")


def test_unpublished_messages_are_for_staff_only(world):
    alert_id = world.alerts["draft"]
    assert_problem(world.client.get(f"/api/v1/alerts/{alert_id}"), 404)
    assert_problem(world.client.get(f"/api/v1/alerts/{alert_id}.xml"), 404)
    assert_problem(
        world.client.get(f"/api/v1/alerts/{alert_id}", headers=world.auth("citizen")), 404
    )
    staff = world.client.get(f"/api/v1/alerts/{alert_id}.xml", headers=world.auth("operator"))
    assert staff.status_code == 200 and "<status>Draft</status>" in staff.text
    # Drills are public: they are marked, not hidden.
    assert world.client.get(f"/api/v1/alerts/{world.alerts['drill']}").status_code == 200


@pytest.mark.parametrize("path", ["/api/v1/alerts/999", "/api/v1/alerts/999.xml"])
def test_unknown_alerts_are_404_problems(world, path):
    assert_problem(world.client.get(path), 404)


def test_bad_list_parameters_are_named(world):
    assert_problem(world.client.get("/api/v1/alerts", params={"area": "seoul"}), 422, "query.area")
    draft = world.client.get("/api/v1/alerts", params={"status": "Draft"})
    assert_problem(draft, 422, "query.status")
    assert_problem(world.client.get("/api/v1/alerts/0"), 422, "path.alert_id")
