"""Atom rendering, read back by a real feed parser (feedparser)."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from datetime import timedelta

import feedparser
from test_channels_support import BASE_TIME, TEXTS, alert_row

from haechi.alerts import feeds

PUBLIC = "https://haechi.example"


def rows(*alerts):
    return [{**a, "id": i} for i, a in enumerate(alerts, start=1)]


def render(alerts, language="ko", status="Actual"):
    feed = feeds.Feed(
        id=feeds.feed_id("all", status, language),
        title=feeds.feed_title("서울특별시", "Seoul", language, status),
        self_url=f"{PUBLIC}/alerts.atom",
        language=language,
    )
    return feeds.render_feed(feed, alerts, public_url=PUBLIC, language=language)


def test_each_alert_is_an_atom_entry_linking_its_cap_xml():
    newer = alert_row("rain-2", sent=BASE_TIME + timedelta(hours=1))
    older = alert_row("urn:oid:2.49.0.1.410.0.2024.1", hazard="fine_dust")
    parsed = feedparser.parse(render(rows(newer, older)))
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    assert parsed.feed.title == "서울특별시 재난 경보"
    assert parsed.feed.updated == "2024-07-10T06:00:00Z"
    assert parsed.feed.id == feeds.feed_id("all", "Actual", "ko")
    first, second = parsed.entries
    assert first.title == TEXTS["ko-KR"][0]
    assert first.summary == TEXTS["ko-KR"][1]
    assert first.updated == first.published == "2024-07-10T06:00:00Z"
    assert first.author == "haechi@safety.seoul.go.kr"
    cap_link = next(link for link in first.links if link.type == "application/cap+xml")
    assert (cap_link.rel, cap_link.href) == ("alternate", f"{PUBLIC}/api/v1/alerts/1.xml")
    assert {(t.term, t.scheme) for t in first.tags} == {
        ("heavy_rain", feeds.HAZARD_SCHEME), ("Actual", feeds.STATUS_SCHEME)
    }
    assert first.id == uuid.uuid5(uuid.NAMESPACE_URL, "cap:haechi@safety.seoul.go.kr:rain-2").urn
    assert second.id == "urn:oid:2.49.0.1.410.0.2024.1"  # already a URN: kept as is
    assert second.tags[0].term == "fine_dust"


def test_titles_follow_the_requested_language_and_fall_back_to_korean():
    alert = rows(alert_row("rain-1"))
    english = feedparser.parse(render(alert, language="en"))
    assert english.feed.title == "Seoul alerts"
    assert english.entries[0].title == TEXTS["en-US"][0]
    assert english.entries[0].summary == TEXTS["en-US"][1]
    vietnamese = feedparser.parse(render(alert, language="vi"))
    assert vietnamese.entries[0].title == TEXTS["ko-KR"][0]


def test_drills_are_marked_in_the_title_in_its_language():
    drill = rows(alert_row("drill-1", status="Exercise", languages=["ko-KR", "en-US", "zh-CN"]))
    assert feedparser.parse(render(drill, status="Exercise")).entries[0].title.startswith("[훈련] ")
    english = feedparser.parse(render(drill, language="en", status="Exercise"))
    assert english.feed.title == "Seoul alerts (exercise)"
    assert english.entries[0].title == f"[EXERCISE] {TEXTS['en-US'][0]}"
    assert feedparser.parse(render(drill, language="zh")).entries[0].title.startswith("[演习] ")


def test_markup_in_headlines_is_escaped_not_interpreted():
    texts = {"ko-KR": ("<b>위험</b> & 대피", "A < B & C > D")}
    alert = rows(alert_row("x-1", languages=["ko-KR"], texts=texts))
    parsed = feedparser.parse(render(alert))
    assert not parsed.bozo
    assert parsed.entries[0].title == "<b>위험</b> & 대피"
    assert parsed.entries[0].summary == "A < B & C > D"


def test_cap_fields_ride_along_in_the_cap_namespace():
    document = ET.fromstring(render(rows(alert_row("rain-1"))))
    entry = document.find(f"{{{feeds.ATOM}}}entry")
    cap = {child.tag.split("}")[1]: child.text for child in entry if feeds.CAP_NS in child.tag}
    assert cap["status"] == "Actual" and cap["msgType"] == "Alert"
    assert cap["severity"] == "Severe" and cap["expires"] == "2024-07-10T11:00:00Z"


def test_an_empty_feed_is_still_valid_atom_and_stable():
    body = render([])
    parsed = feedparser.parse(body)
    assert not parsed.bozo and parsed.version == "atom10" and parsed.entries == []
    assert parsed.feed.updated == "1970-01-01T00:00:00Z"
    assert feeds.etag(body) == feeds.etag(render([]))
