"""CAP 1.2 model, XML and JSON: round trips, and validation against the official OASIS schema."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from lxml import etree

from haechi.alerts.cap import (
    NS,
    Alert,
    Area,
    CapInvalid,
    Circle,
    Info,
    Reference,
    Resource,
    ValuePair,
    cap_time,
    from_json,
    from_xml,
    to_json,
    to_xml,
    validate,
)
from haechi.alerts.schema import xsd_path
from haechi.alerts.schema.fetch import sources
from haechi.core.clock import KST

SENT = datetime(2024, 8, 6, 14, 20, 5, tzinfo=KST)
RING = ((37.5126, 126.9572), (37.5190, 126.9572), (37.5190, 126.9688), (37.5126, 126.9688), (37.5126, 126.9572))


def full_alert() -> Alert:
    """An alert that uses every element of CAP 1.2 at least once."""
    info = Info(
        language="ko-KR", categories=("Met", "Geo"), event="홍수경보", response_types=("Evacuate", "Avoid"),
        urgency="Immediate", severity="Severe", certainty="Observed", audience="어르신, 외국인",
        event_codes=(ValuePair("HAECHI-HAZARD", "river_flood"), ValuePair("KR-CRISIS-LEVEL", "경계")),
        effective=SENT, onset=SENT - timedelta(minutes=5), expires=SENT + timedelta(hours=3),
        sender_name="서울특별시 · 해치", headline="[서울특별시] 한강대교 홍수경보 발령",
        description="첫 줄\n둘째 줄 <태그> & 기호", instruction="하천변에서 벗어나세요.",
        web="https://haechi.example/alerts/1", contact="120",
        parameters=(ValuePair("HAECHI-VALUE", "10.7"), ValuePair("HAECHI-UNIT", "m")),
        resources=(Resource(resource_desc="map", mime_type="image/png", size=1024,
                            uri="https://haechi.example/map.png", digest="ab" * 20),),
        areas=(Area(area_desc="한강대교", polygons=(RING,), circles=(Circle(37.5159, 126.963, 1.5),),
                    geocodes=(ValuePair("KR-ADM", "1117000000"),), altitude=10.0, ceiling=120.5),))
    english = replace(info, language="en-US", event="Flood warning", headline="[Seoul] Flood warning",
                      audience=None, resources=())
    return Alert(
        identifier="haechi.river_flood.gauge-1018683.20240806T052005Z.update", sender="haechi@seoul.go.kr",
        sent=SENT, status="Actual", msg_type="Update", scope="Public", source="Han River gauge",
        codes=("IPAWSv1.0", "HAECHI"), note="a note",
        references=(Reference("haechi@seoul.go.kr", "haechi.river_flood.x.issue", SENT - timedelta(hours=1)),
                    Reference("other@example.org", "abc-1", datetime(2024, 8, 6, 4, 0, tzinfo=UTC))),
        incidents="flood-2024-08", infos=(info, english))


# ── the schema itself ──

def test_the_schema_is_the_pinned_official_oasis_file():
    data = xsd_path().read_bytes()
    assert hashlib.sha256(data).hexdigest() in {s.sha256 for s in sources()}
    root = etree.fromstring(data)
    assert root.get("targetNamespace") == NS == "urn:oasis:names:tc:emergency:cap:1.2"
    assert b"Copyright OASIS Open 2010" in data


# ── round trips ──

def test_xml_round_trip_keeps_every_element():
    alert = full_alert()
    xml = to_xml(alert)
    validate(xml)
    assert from_xml(xml) == alert


def test_json_round_trip_and_the_same_content_as_xml():
    alert = full_alert()
    data = to_json(alert)
    assert from_json(data) == alert
    assert from_json(data) == from_xml(to_xml(alert))
    assert data["msgType"] == "Update" and data["sent"] == "2024-08-06T14:20:05+09:00"
    assert data["references"][1] == "other@example.org,abc-1,2024-08-06T04:00:00+00:00"
    area = data["info"][0]["area"][0]
    assert area["polygon"] == ["37.5126,126.9572 37.519,126.9572 37.519,126.9688 37.5126,126.9688 37.5126,126.9572"]
    assert area["circle"] == ["37.5159,126.963 1.5"]
    assert area["geocode"] == [{"valueName": "KR-ADM", "value": "1117000000"}]


def test_json_is_plain_json():
    import json

    assert json.loads(json.dumps(to_json(full_alert()), ensure_ascii=False)) == to_json(full_alert())


def test_minimal_alert_without_info_round_trips():
    alert = Alert(identifier="ack-1", sender="haechi@seoul.go.kr", sent=SENT, status="System", msg_type="Ack")
    xml = to_xml(alert)
    validate(xml)
    assert from_xml(xml) == alert and from_json(to_json(alert)) == alert


def test_times_keep_their_offset_and_drop_fractions():
    assert cap_time(datetime(2024, 1, 2, 3, 4, 5, 678, tzinfo=KST)) == "2024-01-02T03:04:05+09:00"
    assert cap_time(datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2024-01-02T03:04:05+00:00"
    with pytest.raises(CapInvalid, match="UTC offset"):
        cap_time(datetime(2024, 1, 2, 3, 4, 5))


def test_pretty_printing_does_not_change_the_content():
    alert = full_alert()
    assert from_xml(to_xml(alert, pretty=False)) == from_xml(to_xml(alert))


# ── refusals, each naming the element ──

def broken(old: bytes, new: bytes) -> bytes:
    xml = to_xml(full_alert())
    assert old in xml
    return xml.replace(old, new, 1)


@pytest.mark.parametrize(("old", "new", "element", "words"), [
    (b"<sender>haechi@seoul.go.kr</sender>", b"", "sender", "is missing"),
    (b"<status>Actual</status>", b"<status>Real</status>", "status", "'Real' is not an element of the set"),
    (b"<msgType>Update</msgType>", b"<msgType>Amend</msgType>", "msgType", "'Amend'"),
    (b"<scope>Public</scope>", b"", "scope", "is missing"),
    (b"<sent>2024-08-06T14:20:05+09:00</sent>", b"<sent>2024-08-06T05:20:05Z</sent>", "sent", "pattern"),
    (b"<urgency>Immediate</urgency>", b"<urgency>Soon</urgency>", "urgency", "'Soon'"),
    (b"<category>Met</category>", b"<category>Weather</category>", "category", "'Weather'"),
    (b"<certainty>Observed</certainty>", b"", "certainty", "is missing"),
    (b"<areaDesc>\xed\x95\x9c\xea\xb0\x95\xeb\x8c\x80\xea\xb5\x90</areaDesc>", b"", "areaDesc", "is missing"),
])
def test_hand_broken_alerts_are_refused_naming_the_element(old, new, element, words):
    with pytest.raises(CapInvalid) as caught:
        validate(broken(old, new))
    assert caught.value.field == element
    assert f"<{element}>" in caught.value.detail and words in caught.value.detail
    assert "line" in caught.value.detail


@pytest.mark.parametrize(("old", "new", "element"), [
    (b"<identifier>haechi.river_flood", b"<identifier>haechi river_flood", "identifier"),
    (b"<sender>haechi@seoul.go.kr", b"<sender>haechi,seoul", "sender"),
    (b"126.9572</polygon>", b"126.9573</polygon>", "polygon"),
    (b"<circle>37.5159,126.963 1.5</circle>", b"<circle>37.5159 126.963</circle>", "circle"),
    (b"<references>haechi@seoul.go.kr,", b"<references>haechi@seoul.go.kr;", "references"),
])
def test_rules_of_the_standard_beyond_the_xsd(old, new, element):
    with pytest.raises(CapInvalid) as caught:
        validate(broken(old, new))
    assert caught.value.field == element


def test_not_xml_or_not_cap_is_refused():
    with pytest.raises(CapInvalid, match="not well-formed"):
        validate(b"<alert><identifier>")
    other = to_xml(full_alert()).replace(NS.encode(), b"urn:oasis:names:tc:emergency:cap:1.1")
    with pytest.raises(CapInvalid, match="schema"):
        validate(other)
    with pytest.raises(CapInvalid, match="not a CAP 1.2"):
        from_xml(other)


def test_entities_are_not_expanded():
    evil = (b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&x;</identifier></alert>')
    for read in (validate, from_xml):
        with pytest.raises(CapInvalid, match="DOCTYPE"):
            read(evil)


def test_cap_invalid_is_an_invalid_input_for_the_api():
    from haechi.core.errors import InvalidInput

    with pytest.raises(InvalidInput) as caught:
        validate(broken(b"<status>Actual</status>", b"<status>Real</status>"))
    assert caught.value.status == 422


def test_set_up_refuses_a_schema_whose_digest_is_not_pinned(monkeypatch, tmp_path):
    from haechi.alerts.schema import fetch

    monkeypatch.setattr(fetch, "download_member", lambda source, workdir: b"<schema/>")
    with pytest.raises(RuntimeError, match="SHA-256"):
        fetch.fetch((tmp_path,))
    assert not (tmp_path / "CAP-v1.2.xsd").exists()
    official = xsd_path().read_bytes()
    monkeypatch.setattr(fetch, "download_member", lambda source, workdir: official)
    assert fetch.fetch((tmp_path,)) == tmp_path / "CAP-v1.2.xsd"
    assert (tmp_path / "CAP-v1.2.xsd").read_bytes() == official
