"""The Google Public Alerts CAP profile as a checker: what aggregators expect beyond the CAP 1.2 schema.

Pure. The rules, their levels, messages, sources and figures are data (``google_profile.toml``);
each rule's test is one small function below, registered under the rule's id. :func:`check`
returns every finding; :func:`errors` only those an aggregator refuses. Haechi's own alerts give
no error (``tests/test_cap_profile.py`` composes those of real warnings and checks them).
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import shapely

from .cap import Alert, Area, Info, cap_time, plain_number

RULES_FILE = Path(__file__).with_name("google_profile.toml")
ERROR, RECOMMENDATION = "error", "recommendation"
#: Half the resolution of six decimals: rounded shared borders still touch, in degrees.
TOUCHING = 5e-7
KM_PER_DEGREE = 111.32


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule an alert breaks: where (an XPath like the CAP validator's), and what to do."""

    rule: str
    level: str
    path: str
    message: str


@cache
def rules() -> dict[str, dict[str, Any]]:
    with open(RULES_FILE, "rb") as f:
        return tomllib.load(f)["rules"]


def check(alert: Alert) -> list[Finding]:
    """Every finding of the profile on ``alert``, errors first, in document order."""
    found = [Finding(rule, rules()[rule]["level"], path, rules()[rule]["message"])
             for rule, test in RULES.items() for path in test(alert, rules()[rule])]
    return sorted(found, key=lambda f: f.level != ERROR)


def errors(alert: Alert) -> list[Finding]:
    return [f for f in check(alert) if f.level == ERROR]


# ── the rules: each yields the paths where its rule is broken ─────────────────────────────

Rule = Callable[[Alert, dict[str, Any]], Iterator[str]]
ALERT = "/alert[1]"


def _infos(alert: Alert) -> Iterator[tuple[str, Info]]:
    for n, info in enumerate(alert.infos, start=1):
        yield f"{ALERT}/info[{n}]", info


def _areas(alert: Alert) -> Iterator[tuple[str, Area]]:
    for path, info in _infos(alert):
        for n, area in enumerate(info.areas, start=1):
            yield f"{path}/area[{n}]", area


def _blank(text: str | None) -> bool:
    return text is None or not text.strip()


def update_or_cancel_must_reference(alert: Alert, _: dict) -> Iterator[str]:
    if alert.msg_type in ("Update", "Cancel") and not alert.references:
        yield f"{ALERT}/msgType[1]"


def info_is_required(alert: Alert, _: dict) -> Iterator[str]:
    if not alert.infos:
        yield ALERT


def categories_must_match(alert: Alert, _: dict) -> Iterator[str]:
    for path, info in list(_infos(alert))[1:]:
        if set(info.categories) != set(alert.infos[0].categories):
            yield f"{path}/category[1]"


def event_codes_must_match(alert: Alert, _: dict) -> Iterator[str]:
    for path, info in list(_infos(alert))[1:]:
        if set(info.event_codes) != set(alert.infos[0].event_codes):
            yield f"{path}/eventCode[1]"


def description_is_required(alert: Alert, _: dict) -> Iterator[str]:
    yield from (path for path, info in _infos(alert) if _blank(info.description))


def web_is_required(alert: Alert, rule: dict) -> Iterator[str]:
    for path, info in _infos(alert):
        link = urlsplit((info.web or "").strip())
        if link.scheme not in rule["schemes"] or not link.netloc:
            yield path


def expires_is_required(alert: Alert, _: dict) -> Iterator[str]:
    yield from (path for path, info in _infos(alert) if info.expires is None)


def effective_not_after_expires(alert: Alert, _: dict) -> Iterator[str]:
    for path, info in _infos(alert):
        if info.expires is not None and (info.effective or alert.sent) > info.expires:
            yield f"{path}/effective[1]"


def urgency_severity_certainty_required(alert: Alert, _: dict) -> Iterator[str]:
    yield from (path for path, info in _infos(alert) if not (info.urgency and info.severity and info.certainty))


def area_is_required(alert: Alert, _: dict) -> Iterator[str]:
    yield from (path for path, info in _infos(alert) if not info.areas)


def circle_polygon_or_geocode_is_required(alert: Alert, _: dict) -> Iterator[str]:
    yield from (path for path, area in _areas(alert) if not (area.polygons or area.circles or area.geocodes))


def event_too_long(alert: Alert, rule: dict) -> Iterator[str]:
    yield from (f"{path}/event[1]" for path, info in _infos(alert) if len(info.event) >= rule["shorter_than"])


def _decimals(value: float) -> int:
    text = plain_number(value)
    return len(text.split(".")[1]) if "." in text else 0


def polygon_decimals(alert: Alert, rule: dict) -> Iterator[str]:
    for path, area in _areas(alert):
        for n, polygon in enumerate(area.polygons, start=1):
            if any(_decimals(v) > rule["max_decimals"] for point in polygon for v in point):
                yield f"{path}/polygon[{n}]"
        for n, circle in enumerate(area.circles, start=1):
            if max(_decimals(circle.lat), _decimals(circle.lon)) > rule["max_decimals"]:
                yield f"{path}/circle[{n}]"


def _shape(info: Info) -> shapely.Geometry:
    """The union of an info's polygons and circles in (lon, lat) degrees (circles approximately)."""
    parts = [shapely.Polygon([(lon, lat) for lat, lon in polygon]) for area in info.areas
             for polygon in area.polygons]
    parts += [shapely.Point(c.lon, c.lat).buffer(max(c.radius_km, 1e-3) / KM_PER_DEGREE)
              for area in info.areas for c in area.circles]
    return shapely.unary_union([p.buffer(TOUCHING) for p in parts])


def areas_must_be_contiguous(alert: Alert, _: dict) -> Iterator[str]:
    for path, info in _infos(alert):
        if len(getattr(_shape(info), "geoms", ())) > 1:
            yield f"{path}/area[1]"


def sender_has_no_restricted_characters(alert: Alert, _: dict) -> Iterator[str]:
    if not alert.sender or any(c in alert.sender for c in " \t\n,<&"):
        yield f"{ALERT}/sender[1]"


def time_in_utc_zone(alert: Alert, _: dict) -> Iterator[str]:
    if alert.sent.utcoffset() == timedelta(0):
        yield f"{ALERT}/sent[1]"
    for path, info in _infos(alert):
        for name in ("effective", "onset", "expires"):
            moment = getattr(info, name)
            if moment is not None and cap_time(moment).endswith("+00:00"):
                yield f"{path}/{name}[1]"


def status_test_discouraged(alert: Alert, _: dict) -> Iterator[str]:
    if alert.status == "Test":
        yield f"{ALERT}/status[1]"


def sender_name_recommended(alert: Alert, _: dict) -> Iterator[str]:
    yield from (path for path, info in _infos(alert) if _blank(info.sender_name))


def response_type_recommended(alert: Alert, _: dict) -> Iterator[str]:
    yield from (path for path, info in _infos(alert) if not info.response_types)


def instruction_recommended(alert: Alert, _: dict) -> Iterator[str]:
    yield from (path for path, info in _infos(alert) if _blank(info.instruction))


def headline_too_long(alert: Alert, rule: dict) -> Iterator[str]:
    for path, info in _infos(alert):
        if len(info.headline or "") >= rule["shorter_than"]:
            yield f"{path}/headline[1]"


def headline_and_description_differ(alert: Alert, _: dict) -> Iterator[str]:
    yield from (f"{path}/headline[1]" for path, info in _infos(alert) if info.description == info.headline)


def description_and_instruction_differ(alert: Alert, _: dict) -> Iterator[str]:
    for path, info in _infos(alert):
        if not _blank(info.instruction) and info.description == info.instruction:
            yield f"{path}/description[1]"


def unknown_value_discouraged(alert: Alert, _: dict) -> Iterator[str]:
    for path, info in _infos(alert):
        for name in ("urgency", "severity", "certainty"):
            if getattr(info, name) == "Unknown":
                yield f"{path}/{name}[1]"


def contact_recommended(alert: Alert, _: dict) -> Iterator[str]:
    yield from (path for path, info in _infos(alert) if _blank(info.contact))


def nonzero_circle_radius(alert: Alert, _: dict) -> Iterator[str]:
    for path, area in _areas(alert):
        yield from (f"{path}/circle[{n}]" for n, c in enumerate(area.circles, start=1) if c.radius_km == 0)


def polygon_or_circle_encouraged(alert: Alert, _: dict) -> Iterator[str]:
    for path, info in _infos(alert):
        if info.areas and not any(a.polygons or a.circles for a in info.areas):
            yield f"{path}/area[1]"


def events_in_same_language_match(alert: Alert, _: dict) -> Iterator[str]:
    first: dict[str, str] = {}
    for path, info in _infos(alert):
        if first.setdefault(info.language, info.event) != info.event:
            yield f"{path}/event[1]"


def empty_geocode(alert: Alert, _: dict) -> Iterator[str]:
    for path, area in _areas(alert):
        for n, pair in enumerate(area.geocodes, start=1):
            if _blank(pair.value_name) or _blank(pair.value):
                yield f"{path}/geocode[{n}]"


#: Rule id (``google_profile.toml``) → its test.
RULES: dict[str, Rule] = {name: globals()[name] for name in (
    "update_or_cancel_must_reference", "info_is_required", "categories_must_match", "event_codes_must_match",
    "description_is_required", "web_is_required", "expires_is_required", "effective_not_after_expires",
    "urgency_severity_certainty_required", "area_is_required", "circle_polygon_or_geocode_is_required",
    "event_too_long", "polygon_decimals", "areas_must_be_contiguous", "sender_has_no_restricted_characters",
    "time_in_utc_zone", "status_test_discouraged", "sender_name_recommended", "response_type_recommended",
    "instruction_recommended", "headline_too_long", "headline_and_description_differ",
    "description_and_instruction_differ", "unknown_value_discouraged", "contact_recommended",
    "nonzero_circle_radius", "polygon_or_circle_encouraged", "events_in_same_language_match", "empty_geocode")}
