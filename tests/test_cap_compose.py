"""compose(): every alert kind (issue, update, cancel, exercise) for every criterion, in every
language, validated against the official CAP 1.2 schema; references, marks, areas and refusals."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
import shapely

from haechi.alerts.cap import CapInvalid, from_json, from_xml, to_json, to_xml, validate
from haechi.alerts.compose import (
    compose,
    format_duration,
    format_number,
    format_time,
    iso_duration,
    rings_from_geometry,
    simplify_ring,
    to_json_with_guidance,
)
from haechi.alerts.messages import library
from haechi.cities.targeting import AreaFacts
from haechi.core.clock import KST
from haechi.core.errors import InvalidInput
from haechi.model.hazards import Change, Criterion
from haechi.warnings.criteria import load_criteria

CRITERIA = load_criteria()
LIB = library()
AT = datetime(2024, 8, 6, 14, 20, tzinfo=KST)
SENDER = "haechi@seoul.go.kr"
MARKS = {"ko-KR": "[훈련]", "en-US": "[EXERCISE]", "zh-CN": "[演习]", "ja-JP": "[訓練]", "vi-VN": "[DIỄN TẬP]"}
AREA = AreaFacts(
    names={"ko": "용산구", "en": "Yongsan-gu"}, geocodes=("1117000000",),
    polygons=([(37.52, 126.95), (37.55, 126.95), (37.55, 127.0), (37.52, 127.0)],),
    affected={"people": 217_000, "elderly": 39_000, "children": 21_000, "foreigners": 14_000,
              "facilities": 12, "shelters": 31})


def row_id(c: Criterion) -> str:
    return f"{c.hazard}-{c.level}-{c.property}-{c.scope}-{c.value:g}"


def lower_or_same(c: Criterion) -> Criterion:
    """A level of the same hazard below ``c`` (or ``c`` itself when it is the lowest)."""
    below = [o for o in CRITERIA if o.hazard == c.hazard and o.rank < c.rank and o.property == c.property]
    return max(below, key=lambda o: o.rank, default=c)


def chain(c: Criterion, exercise: bool) -> list:
    """issue → update (raised to ``c``) → cancel, each composed from the one before."""
    first = lower_or_same(c)
    issue = compose(Change("issue", c.hazard, "district:11170", first, None, first.value * 1.1, AT, 1),
                    area=AREA, sender=SENDER, now=AT, exercise=exercise)
    update = compose(Change("update", c.hazard, "district:11170", c, first, c.value * 1.05, AT + timedelta(hours=1), 1),
                     area=AREA, sender=SENDER, now=AT + timedelta(hours=1), previous_alert=issue, exercise=exercise)
    cancel = compose(Change("cancel", c.hazard, "district:11170", None, c, c.value * 0.5, AT + timedelta(hours=5), 1),
                     area=AREA, sender=SENDER, now=AT + timedelta(hours=5), previous_alert=update, exercise=exercise)
    return [issue, update, cancel]


@pytest.mark.parametrize("exercise", [False, True], ids=["actual", "exercise"])
@pytest.mark.parametrize("criterion", CRITERIA, ids=row_id)
def test_every_alert_kind_of_every_criterion_validates_in_every_language(criterion, exercise):
    for alert in chain(criterion, exercise):
        xml = to_xml(alert)
        validate(xml)
        assert from_xml(xml) == alert
        assert from_json(to_json(alert)) == alert
        assert [i.language for i in alert.infos] == ["ko-KR", "en-US", "zh-CN", "ja-JP", "vi-VN"]
        assert alert.status == ("Exercise" if exercise else "Actual")
        for info in alert.infos:
            for text in (info.headline, info.description, info.instruction, info.event, info.sender_name):
                assert "{" not in text and "}" not in text and "None" not in text, text
            assert len(info.headline) <= 160  # CAP: "should be less than 160 characters"


def test_issue_update_cancel_carry_msg_types_and_the_reference_chain():
    warning = next(c for c in CRITERIA if (c.hazard, c.level) == ("heavy_rain", "warning"))
    issue, update, cancel = chain(warning, exercise=False)
    assert [a.msg_type for a in (issue, update, cancel)] == ["Alert", "Update", "Cancel"]
    assert issue.references == ()
    assert update.references == (issue.reference(),)
    assert cancel.references == (issue.reference(), update.reference())
    assert to_json(cancel)["references"] == [
        f"{SENDER},{issue.identifier},2024-08-06T14:20:00+09:00",
        f"{SENDER},{update.identifier},2024-08-06T15:20:00+09:00"]
    assert len({issue.identifier, update.identifier, cancel.identifier}) == 3


def test_an_all_clear_says_so():
    warning = next(c for c in CRITERIA if (c.hazard, c.level) == ("river_flood", "warning"))
    cancel = chain(warning, exercise=False)[2]
    for info in cancel.infos:
        assert info.response_types == ("AllClear",) and info.urgency == "Past" and info.onset is None
        assert info.expires == cancel.sent + timedelta(hours=1)
    ko = cancel.infos[0]
    assert ko.headline == "[서울특별시] 8월 6일 19시 20분 용산구 홍수경보 해제"
    assert "[행동요령" not in ko.instruction


def test_korean_issue_reads_like_a_disaster_message():
    advisory = next(c for c in CRITERIA if c.scope == "gauge:1018683" and c.level == "advisory")
    gauge = AreaFacts(names={"ko": "한강대교", "en": "Hangang Bridge"}, geocodes=("1117000000", "1159000000"),
                      circles=((37.5159, 126.9630, 2.0),))
    alert = compose(Change("issue", "river_flood", "gauge:1018683", advisory, None, 8.62,
                           AT.replace(hour=14, minute=0), 5), area=gauge, sender=SENDER, now=AT)
    ko, en, zh, ja, vi = alert.infos
    assert ko.headline == "[서울특별시] 8월 6일 14시 한강대교 홍수주의보 발령"
    assert ko.description.startswith("8월 6일 14시 한강대교에 홍수주의보가 발령되었습니다. 현재 수위는 8.62m로")
    assert ko.instruction.startswith("하천변 산책로와 둔치 주차장 이용을 자제하시고, 저지대 주민께서는 대피에 대비")
    assert en.headline == "[Seoul] Hangang Bridge: flood advisory issued, Aug 6 14:00"
    assert zh.headline == "[首尔特别市] 8月6日14时 Hangang Bridge发布洪水预警"
    assert ja.headline == "[ソウル特別市] 8月6日14時 Hangang Bridgeに洪水注意報発表"
    assert vi.headline == "[Seoul] Ban hành khuyến cáo lũ tại Hangang Bridge lúc 14:00 ngày 6/8"
    assert vi.description.count("8,62") == 1  # Vietnamese decimal comma
    assert ko.event == "홍수주의보" and en.event == "Flood advisory"
    assert ko.event_code("KR-CRISIS-LEVEL") == "주의" and ko.event_code("HAECHI-CRISIS-LEVEL") == "caution"
    assert ko.areas[0].circles[0].radius_km == 2.0
    assert [g.value for g in ko.areas[0].geocodes] == ["1117000000", "1159000000"]


def test_fine_dust_names_the_pollutant_of_its_criterion():
    pm25 = next(c for c in CRITERIA if c.property == "pm25" and c.level == "advisory")
    alert = compose(Change("issue", "fine_dust", "district:11170", pm25, None, 81.4, AT, 2),
                    area=AREA, sender=SENDER, now=AT)
    ko, en = alert.infos[:2]
    assert ko.headline == "[서울특별시] 8월 6일 14시 20분 용산구 초미세먼지(PM2.5) 주의보 발령"
    assert "초미세먼지(PM2.5) 1시간 평균 농도가 81㎍/㎥로 발령 기준(75㎍/㎥ 이상 2시간 지속)" in ko.description
    assert en.event == "PM2.5 ultrafine dust advisory"
    assert "over 1 hour is 81 µg/m³" in en.description


def test_an_update_says_raised_or_lowered():
    pm10 = {c.level: c for c in CRITERIA if c.property == "pm10" and c.hazard == "fine_dust"}
    issue = compose(Change("issue", "fine_dust", "district:11170", pm10["advisory"], None, 160, AT, 1),
                    area=AREA, sender=SENDER, now=AT)
    up = compose(Change("update", "fine_dust", "district:11170", pm10["warning"], pm10["advisory"], 310, AT, 1),
                 area=AREA, sender=SENDER, now=AT, previous_alert=issue)
    down = compose(Change("update", "fine_dust", "district:11170", pm10["advisory"], pm10["warning"], 140, AT, 1),
                   area=AREA, sender=SENDER, now=AT, previous_alert=up)
    assert up.infos[0].headline.endswith("미세먼지(PM10) 주의보 → 미세먼지(PM10) 경보 상향")
    assert down.infos[0].headline.endswith("미세먼지(PM10) 경보 → 미세먼지(PM10) 주의보 하향")
    assert "raised" in up.infos[1].headline and "lowered" in down.infos[1].headline
    assert up.infos[0].parameter("HAECHI-PREVIOUS-LEVEL") == "advisory"
    assert up.infos[0].instruction.startswith("외출을 삼가시고")  # the new level's instruction


def test_exercise_alerts_are_marked_everywhere():
    crowd = next(c for c in CRITERIA if (c.hazard, c.level) == ("crowd", "serious"))
    for alert in chain(crowd, exercise=True):
        assert alert.status == "Exercise" and alert.note.startswith("[훈련]")
        assert alert.identifier.endswith(".exercise")
        for info in alert.infos:
            assert info.headline.startswith(MARKS[info.language] + " ")
            assert info.description.startswith(MARKS[info.language] + " ")
    actual = chain(crowd, exercise=False)[0]
    assert not any(m in i.headline for i in actual.infos for m in MARKS.values())
    assert actual.note is None


def test_expiry_and_categories_come_from_the_data():
    expected = {"fine_dust": 6, "asian_dust": 6, "heavy_rain": 3, "heat_wave": 24, "river_flood": 3,
                "structure": 12, "crowd": 1}
    for hazard, hours in expected.items():
        c = next(c for c in CRITERIA if c.hazard == hazard)
        alert = compose(Change("issue", hazard, "x", c, None, c.value, AT, 1), area=AREA, sender=SENDER, now=AT)
        assert all(i.expires - i.effective == timedelta(hours=hours) for i in alert.infos)
    assert alert.infos[0].categories == ("Safety",)


def test_parameters_carry_the_value_the_rule_and_the_people_reached():
    c = next(c for c in CRITERIA if c.hazard == "heavy_rain" and c.window == timedelta(hours=12)
             and c.level == "warning")
    info = compose(Change("issue", "heavy_rain", "district:11170", c, None, 183.5, AT, 4),
                   area=AREA, sender=SENDER, now=AT).infos[0]
    assert info.parameter("HAECHI-VALUE") == "183.5" and info.parameter("HAECHI-UNIT") == "mm"
    assert info.parameter("HAECHI-THRESHOLD") == ">= 180" and info.parameter("HAECHI-WINDOW") == "PT12H"
    assert info.parameter("HAECHI-CRITERION-SOURCE") == c.source
    assert info.parameter("HAECHI-AFFECTED-ELDERLY") == "39000"
    assert info.parameter("HAECHI-AREA") == "district:11170"
    assert "12시간 누적 강우량이 183.5mm" in info.description


def test_audiences_add_their_guidance_to_the_instruction():
    c = next(c for c in CRITERIA if (c.hazard, c.level) == ("heat_wave", "warning"))
    change = Change("issue", "heat_wave", "district:11170", c, None, 35.4, AT, 1)
    general = compose(change, area=AREA, sender=SENDER, now=AT)
    tailored = compose(change, area=AREA, sender=SENDER, now=AT, audiences=("elderly", "children", "foreigners"))
    assert general.infos[0].audience is None and "[행동요령 · 모든 시민]" in general.infos[0].instruction
    ko, en = tailored.infos[:2]
    assert ko.audience == "어르신, 어린이, 외국인" and ko.parameter("HAECHI-AUDIENCES") == "elderly children foreigners"
    for heading in ("[행동요령 · 어르신]", "[행동요령 · 어린이]", "[행동요령 · 외국인]"):
        assert heading in ko.instruction
    assert "[행동요령 · 모든 시민]" not in ko.instruction
    assert "1330" in en.instruction and "What to do (children):" in en.instruction
    assert len(tailored.infos) == 5  # one <info> per language, whatever the audiences


def test_json_with_guidance_for_channels_that_tailor_by_audience():
    c = next(c for c in CRITERIA if (c.hazard, c.level) == ("heat_wave", "advisory"))
    alert = compose(Change("issue", "heat_wave", "district:11170", c, None, 33.2, AT, 1),
                    area=AREA, sender=SENDER, now=AT)
    data = to_json_with_guidance(alert)
    assert set(data["info"][0]["guidance"]) == {"general", "elderly", "children", "disabled", "foreigners"}
    assert data["info"][4]["guidance"]["children"].startswith("- Hôm nay trời rất nóng")
    without = dict(data, info=[{k: v for k, v in i.items() if k != "guidance"} for i in data["info"]])
    assert from_json(without) == alert


def test_chosen_languages_only():
    c = CRITERIA[0]
    alert = compose(Change("issue", c.hazard, "x", c, None, c.value, AT, 1), area=AREA, sender=SENDER, now=AT,
                    languages=("en", "vi"))
    assert alert.languages == ("en-US", "vi-VN")
    validate(to_xml(alert))


def test_area_names_fall_back_to_english_then_korean():
    c = CRITERIA[0]
    change = Change("issue", c.hazard, "x", c, None, c.value, AT, 1)
    alert = compose(change, area=replace(AREA, names={"ko": "용산구", "en": "Yongsan-gu", "ja": "龍山区"}),
                    sender=SENDER, now=AT)
    assert [i.areas[0].area_desc for i in alert.infos] == ["용산구", "Yongsan-gu", "Yongsan-gu", "龍山区", "Yongsan-gu"]
    korean_only = compose(change, area=replace(AREA, names={"ko": "용산구"}), sender=SENDER, now=AT)
    assert {i.areas[0].area_desc for i in korean_only.infos} == {"용산구"}
    busan = compose(change, area=replace(AREA, city={"ko": "부산광역시", "en": "Busan"}), sender=SENDER, now=AT)
    assert busan.infos[0].headline.startswith("[부산광역시]") and busan.infos[1].headline.startswith("[Busan]")


# ── refusals ──

@pytest.mark.parametrize(("changes", "message", "field"), [
    ({"area": replace(AREA, geocodes=(), polygons=(), circles=())}, "needs an area", "area"),
    ({"area": replace(AREA, names={})}, "name", "area"),
    ({"area": replace(AREA, geocodes=("11170",))}, "10-digit", "geocode"),
    ({"area": replace(AREA, polygons=([(37.5, 126.9), (37.6, 126.9)],))}, "3 distinct points", "polygon"),
    ({"area": replace(AREA, polygons=([(126.9, 37.5), (127.0, 37.5), (127.0, 37.6)],))}, "WGS84", "polygon"),
    ({"languages": ("ko", "fr")}, "unknown language 'fr'", "language"),
    ({"audiences": ("general", "tourists")}, "unknown audience 'tourists'", "audience"),
    ({"now": datetime(2024, 8, 6, 14, 20)}, "no time zone", "time"),
])
def test_bad_input_is_refused_clearly(changes, message, field):
    c = CRITERIA[0]
    kwargs = {"area": AREA, "sender": SENDER, "now": AT, **changes}
    with pytest.raises(InvalidInput, match=message) as caught:
        compose(Change("issue", c.hazard, "x", c, None, c.value, AT, 1), **kwargs)
    assert caught.value.field == field


def test_an_update_or_cancel_needs_the_alert_it_follows():
    c = CRITERIA[1]
    for kind, now_, before in (("update", c, CRITERIA[0]), ("cancel", None, c)):
        with pytest.raises(InvalidInput, match="must reference"):
            compose(Change(kind, c.hazard, "x", now_, before, 1.0, AT, 1), area=AREA, sender=SENDER, now=AT)


def test_a_sender_with_spaces_is_refused_by_compose_and_by_validation():
    c = CRITERIA[0]
    with pytest.raises(InvalidInput, match="sender 'Seoul City'") as caught:
        compose(Change("issue", c.hazard, "x", c, None, c.value, AT, 1), area=AREA, sender="Seoul City", now=AT)
    assert caught.value.field == "sender"
    alert = compose(Change("issue", c.hazard, "x", c, None, c.value, AT, 1), area=AREA, sender=SENDER, now=AT)
    with pytest.raises(CapInvalid, match="sender"):
        validate(to_xml(replace(alert, sender="Seoul City")))


def test_the_same_change_gives_the_same_identifier():
    c = CRITERIA[0]
    change = Change("issue", c.hazard, "district:11170", c, None, c.value, AT, 1)
    first = compose(change, area=AREA, sender=SENDER, now=AT)
    again = compose(change, area=AREA, sender=SENDER, now=AT + timedelta(seconds=30))
    assert first.identifier == again.identifier == f"haechi.{c.hazard}.district-11170.20240806T052000Z.issue"


# ── polygons ──

def circle_ring(n: int, lat: float = 37.5665, lon: float = 126.978, r: float = 0.05):
    return [(lat + r * math.sin(2 * math.pi * k / n), lon + r * math.cos(2 * math.pi * k / n)) for k in range(n)]


def test_a_detailed_boundary_is_simplified_closed_and_valid():
    ring = circle_ring(5000)
    simple = simplify_ring(ring, 200, 5)
    assert 4 <= len(simple) <= 200 and simple[0] == simple[-1]
    original = shapely.Polygon([(lon, lat) for lat, lon in ring])
    reduced = shapely.Polygon([(lon, lat) for lat, lon in simple])
    assert reduced.symmetric_difference(original).area / original.area < 0.01
    alert = compose(Change("issue", CRITERIA[0].hazard, "x", CRITERIA[0], None, 1.0, AT, 1),
                    area=replace(AREA, polygons=tuple(circle_ring(3000, lon=126.9 + i / 5) for i in range(8))),
                    sender=SENDER, now=AT)
    polygons = alert.infos[0].areas[0].polygons
    assert len(polygons) == 8 and sum(len(p) for p in polygons) <= 1000
    validate(to_xml(alert))


def test_small_rings_are_closed_and_rounded_but_kept():
    ring = [(37.123456789, 127.0), (37.2, 127.0), (37.2, 127.1)]
    assert simplify_ring(ring, 200, 5) == ((37.12346, 127.0), (37.2, 127.0), (37.2, 127.1), (37.12346, 127.0))


def test_rings_from_a_lon_lat_geometry():
    square = shapely.MultiPolygon([shapely.box(126.9, 37.5, 127.0, 37.6), shapely.box(127.1, 37.5, 127.2, 37.6)])
    rings = rings_from_geometry(square)
    assert len(rings) == 2 and all(-90 <= lat <= 90 and lat < 40 for ring in rings for lat, _ in ring)


# ── how numbers, times and durations read ──

def test_formatting_helpers():
    assert [format_number(v, "ko", LIB) for v in (160.4, 8.5, 10.25, 0.0764, 0.3, 33.0)] == [
        "160", "8.5", "10.25", "0.0764", "0.3", "33"]
    assert format_number(8.62, "vi", LIB) == "8,62"
    assert format_time(AT.replace(minute=0), "ko", LIB) == "14시"
    assert format_time(AT.replace(hour=9, minute=5), "en", LIB) == "09:05"
    assert format_time(AT, "zh", LIB) == "14时20分" and format_time(AT, "ja", LIB) == "14時20分"
    assert format_duration(timedelta(hours=1), "en", LIB) == "1 hour"
    assert format_duration(timedelta(hours=12), "en", LIB) == "12 hours"
    assert format_duration(timedelta(days=2), "ko", LIB) == "2일"
    assert format_duration(timedelta(minutes=5), "ja", LIB) == "5分間"
    assert format_duration(timedelta(0), "vi", LIB) == "một lần đo"
    assert [iso_duration(timedelta(**kw)) for kw in ({"days": 2}, {"hours": 3}, {"minutes": 10}, {})] == [
        "P2D", "PT3H", "PT10M", "PT0S"]
