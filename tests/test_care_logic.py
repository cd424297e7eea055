"""Care services' pure logic: geofence, device reports, trips, welfare periods, tailored messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
import pytest
from shapely.geometry import LineString, box

from haechi.care import welfare
from haechi.care.geofence import Geofence, HazardArea, Zone, parse_schedule
from haechi.care.messages import languages, render
from haechi.care.reports import (
    WITHHELD,
    Activity,
    Position,
    Refused,
    decode_message,
    read_item,
    topic_parts,
)
from haechi.care.rules import rules, welfare_rules
from haechi.care.trips import TripRules, TripWatch, check_position, is_overdue

# Monday 2026-05-04 10:00 KST = 01:00 UTC
MONDAY_10_KST = datetime(2026, 5, 4, 1, 0, tzinfo=UTC)
SCHOOL = box(127.000, 37.500, 127.002, 37.502)
HOME = box(127.010, 37.510, 127.012, 37.512)
WEEKDAYS_9_TO_15 = [{"days": [0, 1, 2, 3, 4], "start": "09:00", "end": "15:00"}]


def fence(**kw) -> Geofence:
    zones = [Zone(1, 7, "school", "해치초등학교", SCHOOL, parse_schedule(WEEKDAYS_9_TO_15)),
             Zone(2, 7, "home", "집", HOME, ())]
    return Geofence(zones, kw.pop("hazards", ()), dwell_radius_m=50, dwell_s=20 * 60)


def check(g: Geofence, ward: int, lon: float, lat: float, at: datetime):
    return g.check(np.array([ward]), np.array([lon]), np.array([lat]), np.array([at.timestamp()]))


def test_leaving_school_during_school_hours_alerts_once_and_rearms_inside():
    g = fence()
    assert check(g, 7, 127.001, 37.501, MONDAY_10_KST) == []
    [left] = check(g, 7, 127.005, 37.505, MONDAY_10_KST + timedelta(minutes=1))
    assert (left.kind, left.detail["zone"], left.detail["was_inside"]) == ("left_zone", "해치초등학교", True)
    assert check(g, 7, 127.006, 37.505, MONDAY_10_KST + timedelta(minutes=2)) == []  # same episode
    assert check(g, 7, 127.001, 37.501, MONDAY_10_KST + timedelta(minutes=3)) == []  # back inside
    assert [f.kind for f in check(g, 7, 127.005, 37.505, MONDAY_10_KST + timedelta(minutes=4))] == ["left_zone"]


def test_outside_the_school_after_hours_is_expected():
    g = fence()
    evening = MONDAY_10_KST + timedelta(hours=8)  # 18:00 KST
    assert check(g, 7, 127.001, 37.501, evening) == []
    assert check(g, 7, 127.005, 37.505, evening + timedelta(minutes=1)) == []


def test_another_wards_zone_does_not_count_as_safe():
    g = fence()
    # Ward 8 has no zones; standing in ward 7's school is no concern of the geofence.
    assert check(g, 8, 127.001, 37.501, MONDAY_10_KST) == []
    assert not g.inside[8]


def test_a_stop_outside_the_safe_zones_alerts_after_the_dwell_time():
    g = fence()
    evening = MONDAY_10_KST + timedelta(hours=9)
    assert check(g, 7, 127.03, 37.53, evening) == []
    assert check(g, 7, 127.0301, 37.5301, evening + timedelta(minutes=19)) == []
    [stop] = check(g, 7, 127.0302, 37.53, evening + timedelta(minutes=21))
    assert (stop.kind, stop.detail["minutes"]) == ("dwell", 21)
    assert check(g, 7, 127.0302, 37.53, evening + timedelta(minutes=40)) == []  # once per stop


def test_staying_at_home_is_no_dwell():
    g = fence()
    evening = MONDAY_10_KST + timedelta(hours=9)
    for minutes in (0, 30, 60):
        assert check(g, 7, 127.011, 37.511, evening + timedelta(minutes=minutes)) == []


def test_entering_an_active_hazard_area_alerts_once_per_warning():
    flood = HazardArea(31, "heavy_rain", "warning", box(127.02, 37.52, 127.04, 37.54))
    g = fence(hazards=[flood])
    evening = MONDAY_10_KST + timedelta(hours=9)
    [hit] = check(g, 7, 127.03, 37.53, evening)
    assert (hit.kind, hit.detail["warning_id"], hit.detail["hazard"]) == ("hazard", 31, "heavy_rain")
    assert check(g, 7, 127.031, 37.53, evening + timedelta(minutes=1)) == []


def test_a_batch_evaluates_many_wards_and_repeated_wards_in_time_order():
    zones = [Zone(i, i, "home", "home", box(127 + i * 1e-3, 37.5, 127 + i * 1e-3 + 5e-4, 37.5005),
                  parse_schedule([{"start": "00:00", "end": "23:59"}])) for i in range(1, 201)]
    g = Geofence(zones, dwell_radius_m=50, dwell_s=1200)
    wards = np.arange(1, 201)
    inside_lon = 127 + wards * 1e-3 + 2.5e-4
    t = np.full(200, MONDAY_10_KST.timestamp())
    assert g.check(wards, inside_lon, np.full(200, 37.50025), t) == []
    # Every even ward steps out; ward 2 reports twice (out, then back in) in one batch.
    out = wards % 2 == 0
    lon = np.where(out, inside_lon + 0.01, inside_lon)
    found = g.check(np.append(wards, 2), np.append(lon, inside_lon[1]), np.full(201, 37.50025),
                    np.append(t + 30, t[0] + 60))
    assert sorted(f.ward_id for f in found) == list(range(2, 201, 2))
    assert g.inside[2] and not g.inside[4]


def test_schedules_are_checked():
    with pytest.raises(ValueError, match=r"schedule\[0\].end"):
        parse_schedule([{"start": "15:00", "end": "09:00"}])
    with pytest.raises(ValueError, match="days"):
        parse_schedule([{"days": [7], "start": "09:00", "end": "10:00"}])


# ── device reports ──

NOW = datetime(2026, 5, 4, 1, 0, tzinfo=UTC)


def test_topics_name_device_and_kind():
    assert topic_parts("haechi/care/tag-1/position", "haechi/care") == ("tag-1", "position")
    assert topic_parts("haechi/care/tag 1/position", "haechi/care") is None
    assert topic_parts("haechi/care/tag-1/temperature", "haechi/care") is None


def test_a_position_message_reads_to_positions():
    [p] = decode_message("haechi/care/tag-1/position",
                         b'{"at": "2026-05-04T09:59:00+09:00", "lon": 127.0, "lat": 37.5, "accuracy_m": 8}',
                         "haechi/care", NOW, 120)
    assert p == Position("tag-1", datetime(2026, 5, 4, 0, 59, tzinfo=UTC), 127.0, 37.5, 8.0)


@pytest.mark.parametrize(("item", "field"), [
    ({"at": "2026-05-04T10:00:00+09:00", "lon": 181, "lat": 37.5}, "lon"),
    ({"at": "2026-05-04T10:00:00+09:00", "lon": 127, "lat": -91}, "lat"),
    ({"at": "2026-05-04T10:10:00+09:00", "lon": 127, "lat": 37.5}, "at"),  # 10 minutes ahead
    ({"at": "2026-05-04T10:00:00", "lon": 127, "lat": 37.5}, "at"),  # no offset
    ({"at": "2026-05-04T00:59:00Z", "lon": "127", "lat": 37.5}, "lon"),
])
def test_bad_positions_are_refused_naming_the_field_without_a_usable_position(item, field):
    [refused] = [read_item("position", {"device": "tag-1", **item}, NOW, 120)]
    assert isinstance(refused, Refused) and refused.field == field
    kept = orjson.loads(refused.payload)
    # The faulty field is kept to explain the refusal; a valid coordinate never is.
    assert WITHHELD in (kept["lon"], kept["lat"]) or field in ("lon", "lat")
    if field == "at":
        assert kept["lon"] == kept["lat"] == WITHHELD


def test_activity_reports_name_their_kind():
    assert read_item("activity", {"device": "door-1", "at": "2026-05-04T09:00:00+09:00"}, NOW, 120) == Activity(
        "door-1", datetime(2026, 5, 4, 0, 0, tzinfo=UTC), None)
    bad = read_item("activity", {"device": "door-1", "at": "2026-05-04T00:00:00Z", "kind": "smoke"}, NOW, 120)
    assert isinstance(bad, Refused) and bad.field == "kind"


# ── trips ──

ROUTE = LineString([(127.000, 37.500), (127.010, 37.500)])  # ~880 m east
TRIP_RULES = TripRules(route_buffer_m=100, stop_s=300, overdue_grace_s=600, arrival_radius_m=50)


def test_trip_deviation_stop_overdue_and_arrival():
    watch = TripWatch(1, 9, ROUTE, NOW + timedelta(minutes=15))
    assert check_position(watch, TRIP_RULES, 127.002, 37.5002, NOW) == []
    [(kind, detail)] = check_position(watch, TRIP_RULES, 127.004, 37.5030, NOW + timedelta(minutes=1))
    assert kind == "deviation" and detail["off_route_m"] > 300
    assert check_position(watch, TRIP_RULES, 127.004, 37.5030, NOW + timedelta(minutes=3)) == []
    [(kind, _)] = check_position(watch, TRIP_RULES, 127.004, 37.5030, NOW + timedelta(minutes=7))
    assert kind == "long_stop"
    assert not is_overdue(watch, TRIP_RULES, NOW + timedelta(minutes=20))
    assert is_overdue(watch, TRIP_RULES, NOW + timedelta(minutes=26))
    assert not is_overdue(watch, TRIP_RULES, NOW + timedelta(minutes=27))  # once
    assert check_position(watch, TRIP_RULES, 127.0099, 37.5001, NOW + timedelta(minutes=28)) == [("arrived", {})]


# ── welfare ──


def test_heat_and_cold_waves_tighten_the_welfare_period():
    w = welfare_rules()
    assert welfare.period(w, []) == (w["base_hours"], None)
    hours, why = welfare.period(w, ["fine_dust", "heat_wave"])
    assert hours < w["base_hours"] and why == "heat_wave"
    assert welfare.period(w, ["cold_wave"])[1] == "cold_wave"
    assert welfare.check_due(NOW - timedelta(hours=25), NOW - timedelta(days=3), NOW, 24)
    assert not welfare.check_due(None, NOW - timedelta(hours=2), NOW, 24)
    assert welfare.same_district("1168010100", "11680") and not welfare.same_district("11110", "11680")
    assert welfare.same_district("1168010100", "11") and not welfare.same_district("2611010100", "11")  # city-wide


def test_every_threshold_names_its_source():
    text = (__import__("haechi.care.rules", fromlist=["HERE"]).HERE / "rules.toml").read_text()
    assert "위치정보법" in text and "도로교통법" in text and "Rowe" in text
    assert rules()["positions"]["retention_h"] == 24


# ── tailored messages ──


@pytest.mark.parametrize("language", ["ko", "en", "zh", "ja", "vi"])
def test_every_alert_kind_renders_in_every_language(language):
    kinds = ["left_zone", "dwell", "hazard", "welfare_check", "welfare_escalated", "deviation",
             "long_stop", "overdue", "sos", "arrived", "school_hazard"]
    for kind in kinds:
        m = render(kind, language, [], ward="W", at=NOW, detail={"minutes": 5, "hazard": "heat_wave", "zone": "Z"})
        text = m["title"] + m["body"] + m["easy_read"]
        assert ("Z" if kind == "school_hazard" else "W") in text and "{" not in text and "}" not in text


def test_needs_choose_easy_read_large_text_and_sign_language():
    plain = render("sos", "ko", [], ward="민준", at=NOW)
    easy = render("sos", "ko", ["easy_read", "large_text", "sign_language"], ward="민준", at=NOW)
    assert plain["body"] != easy["body"] and easy["body"] == easy["easy_read"]
    assert easy["large_text"] and easy["text_scale"] > 1 and easy["sign_language_url"].startswith("https://")
    assert "sign_language_url" not in plain
    assert render("hazard", "en", [], ward="M", at=NOW, detail={"hazard": "heavy_rain"})["title"].endswith(
        "heavy rain warning area")
    assert set(languages()) == {"ko", "en", "zh", "ja", "vi"}
