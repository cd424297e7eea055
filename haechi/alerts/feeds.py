"""Atom 1.0 feeds of CAP alerts (RFC 4287), rendered from stored alert rows; no I/O.

Each alert is one entry linking its CAP XML (``rel="alternate" type="application/cap+xml"``), the
way alert hubs and aggregators read CAP feeds. A few CAP fields ride along in the CAP namespace
(``cap:status``, ``cap:severity`` …) so a reader can filter without fetching every message.
"""

from __future__ import annotations

import hashlib
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .webhooks import CAP_XML, alert_links, info_blocks, primary_language

ATOM = "http://www.w3.org/2005/Atom"
CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
ATOM_MEDIA = "application/atom+xml"
HAZARD_SCHEME = "urn:haechi:hazard"
STATUS_SCHEME = f"{CAP_NS}:status"
#: Feeds with no entries still need an ``<updated>``; a fixed one keeps their ETag stable.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: How a drill is marked in titles, per language (English for any other).
EXERCISE_MARKS = {"ko": "[훈련]", "en": "[EXERCISE]", "zh": "[演习]", "ja": "[訓練]", "vi": "[DIỄN TẬP]"}
#: How a test message is marked (the same marks as ``messages/common.toml``).
TEST_MARKS = {"ko": "[시험]", "en": "[TEST]", "zh": "[测试]", "ja": "[試験]", "vi": "[THỬ NGHIỆM]"}
MARKS = {"Exercise": EXERCISE_MARKS, "Test": TEST_MARKS}
#: The language a title falls back to when the alert lacks the requested one.
DEFAULT_LANGUAGE = "ko"


@dataclass(frozen=True, slots=True)
class Feed:
    """What the feed itself says about itself."""

    id: str
    title: str
    self_url: str
    language: str


def feed_id(scope: str, status: str, language: str) -> str:
    """A stable ``urn:uuid`` for one feed (area scope × status × language), whatever the host."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"haechi:alerts:{scope}:{status}:{language}").urn


def feed_title(area_name_ko: str, area_name_en: str | None, language: str, status: str) -> str:
    """``서울특별시 재난 경보`` or ``Seoul alerts``; drill feeds say so."""
    korean = language == "ko"
    title = f"{area_name_ko} 재난 경보" if korean else f"{area_name_en or area_name_ko} alerts"
    if status == "Exercise":
        title += " (훈련)" if korean else " (exercise)"
    return title


def entry_id(alert: Mapping[str, Any]) -> str:
    """The entry's ``urn:``: the CAP identifier when it is a URN, else a UUID derived from it.

    Sender and identifier together name a CAP message uniquely, so the UUID is stable across
    renderings and hosts.
    """
    identifier = alert["identifier"]
    if identifier.lower().startswith("urn:"):
        return identifier
    return uuid.uuid5(uuid.NAMESPACE_URL, f"cap:{alert['sender']}:{identifier}").urn


def choose_info(alert: Mapping[str, Any], language: str) -> Mapping[str, Any]:
    """The ``info`` block in ``language``, else Korean, else the first one."""
    infos = info_blocks(alert["cap_json"])
    for wanted in (language, DEFAULT_LANGUAGE):
        for info in infos:
            if primary_language(info.get("language", "en-US")) == wanted:
                return info
    return infos[0] if infos else {}


def entry_title(alert: Mapping[str, Any], language: str) -> str:
    """The headline in ``language`` (or the fallback), marked when the alert is a drill or a test
    (unless its headline carries the mark already, as composed ones do)."""
    info = choose_info(alert, language)
    headline = info.get("headline") or info.get("event") or alert["hazard"]
    marks = MARKS.get(alert["status"])
    if marks is None:
        return headline
    mark = marks.get(primary_language(info.get("language", language)), marks["en"])
    return headline if headline.startswith(mark) else f"{mark} {headline}"


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def feed_updated(alerts: Sequence[Mapping[str, Any]]) -> datetime:
    """The newest ``sent`` among the entries (the feed changed then), or the epoch when empty."""
    return max((a["sent"] for a in alerts), default=EPOCH)


def render_feed(
    feed: Feed, alerts: Sequence[Mapping[str, Any]], *, public_url: str, language: str
) -> bytes:
    """The Atom document (UTF-8) of ``alerts``, in the order given (the caller sorts them)."""
    root = ET.Element("feed", {"xmlns": ATOM, "xmlns:cap": CAP_NS, "xml:lang": feed.language})
    _text(root, "id", feed.id)
    _text(root, "title", feed.title)
    _text(root, "updated", rfc3339(feed_updated(alerts)))
    ET.SubElement(root, "link", rel="self", type=ATOM_MEDIA, href=feed.self_url)
    _text(ET.SubElement(root, "author"), "name", "Haechi 해치")
    _text(root, "generator", "Haechi")
    for alert in alerts:
        root.append(_entry(alert, public_url, language))
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _entry(alert: Mapping[str, Any], public_url: str, language: str) -> ET.Element:
    info = choose_info(alert, language)
    links = alert_links(public_url, alert["id"])
    entry = ET.Element("entry")
    _text(entry, "id", entry_id(alert))
    _text(entry, "title", entry_title(alert, language))
    _text(entry, "updated", rfc3339(alert["sent"]))
    _text(entry, "published", rfc3339(alert["sent"]))
    _text(ET.SubElement(entry, "author"), "name", alert["sender"])
    if info.get("description"):
        _text(entry, "summary", info["description"])
    ET.SubElement(entry, "link", rel="alternate", type=CAP_XML, href=links["cap_xml"])
    ET.SubElement(entry, "link", rel="related", type="application/json", href=links["json"])
    ET.SubElement(entry, "category", term=alert["hazard"], scheme=HAZARD_SCHEME)
    ET.SubElement(entry, "category", term=alert["status"], scheme=STATUS_SCHEME)
    for name, value in _cap_fields(alert):
        _text(entry, f"cap:{name}", value)
    return entry


def _cap_fields(alert: Mapping[str, Any]) -> list[tuple[str, str]]:
    fields = [
        ("identifier", alert["identifier"]),
        ("sender", alert["sender"]),
        ("sent", rfc3339(alert["sent"])),
        ("status", alert["status"]),
        ("msgType", alert["msg_type"]),
        ("severity", alert["severity"]),
        ("urgency", alert["urgency"]),
        ("certainty", alert["certainty"]),
    ]
    if alert.get("expires"):
        fields.append(("expires", rfc3339(alert["expires"])))
    return fields


def _text(parent: ET.Element, tag: str, text: str) -> ET.Element:
    element = ET.SubElement(parent, tag)
    element.text = text
    return element


def etag(body: bytes) -> str:
    """A strong validator for a rendered feed: the same bytes, the same tag."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
