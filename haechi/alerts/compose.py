"""From a warning's lifecycle change and the facts of its area (``cities.targeting.AreaFacts``, as
targeting describes it) to a CAP 1.2 alert. Pure: no I/O.

One ``<info>`` per language, written from the hand-made templates of ``messages/`` (never machine
translation); the instruction is the level's instruction followed by the action guidance for the
requested audiences. An update or a cancel refers to the chain of messages before it; an exercise
is ``status`` Exercise, and every headline and description carries the language's drill mark; a
test (``status`` Test, an end-to-end check with an aggregator) carries the test mark the same way.
Each alert meets the Google Public Alerts profile (``profile.py``): ``<web>`` on every info, one
contiguous area (an area in pieces far apart is first split, one alert per piece:
:func:`contiguous_pieces`). An area no loaded district holds makes a Restricted alert, for
operators only: it reaches no place. The CAP profile is described in docs/alerts.md.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import shapely
import shapely.affinity
import shapely.ops

from haechi.cities.targeting import UNPLACED, AreaFacts, in_language
from haechi.core.clock import KST
from haechi.core.errors import InvalidInput
from haechi.model.hazards import CRISIS_KO, Change, Criterion, duration

from . import messages
from .cap import (
    Alert,
    Area,
    Circle,
    Info,
    Point,
    Reference,
    ValuePair,
    cap_time,
    plain_number,
    to_json,
)
from .messages import Library, render

MSG_TYPES = {"issue": "Alert", "update": "Update", "cancel": "Cancel"}
#: The CAP values of an all-clear: the event is over, nothing more to do.
ALL_CLEAR = {"urgency": "Past", "severity": "Minor", "certainty": "Observed", "response_types": ("AllClear",)}
GEOCODE_DIGITS = re.compile(r"^\d{10}$")
#: <eventCode> and <parameter> names of Haechi's profile (docs/alerts.md).
HAZARD, LEVEL, CRISIS, CRISIS_KR = "HAECHI-HAZARD", "HAECHI-LEVEL", "HAECHI-CRISIS-LEVEL", "KR-CRISIS-LEVEL"
AUDIENCES = "HAECHI-AUDIENCES"

Ring = Sequence[tuple[float, float]]


# ── the alert ──────────────────────────────────────────────────────────────────────────

def compose(
    change: Change,
    *,
    area: AreaFacts,
    sender: str,
    now: datetime,
    previous_alert: Alert | None = None,
    exercise: bool = False,
    test: bool = False,
    audiences: Sequence[str] = ("general",),
    languages: Sequence[str] | None = None,
    web: str | None = None,
    identifier: str | None = None,
    library: Library | None = None,
) -> Alert:
    """The CAP alert announcing ``change`` (issue → Alert, update → Update, cancel → Cancel).

    ``previous_alert`` is required for an update or a cancel: the new message references it and
    everything it referenced. ``now`` becomes ``sent``. The identifier is deterministic (hazard,
    area, time, kind, exercise or test) unless given, so composing the same change twice gives the
    same message and the store's unique key refuses a duplicate. ``web`` is the alert's public page
    (every info links it). ``exercise`` makes a drill, ``test`` a Test message.
    """
    lib = library or messages.library()
    languages = tuple(languages or lib.languages)
    _check_choices(languages, lib.languages, "language")
    _check_choices(audiences, lib.audiences, "audience")
    _check_area(area)
    _check_sender(sender)
    msg_type = _msg_type(change, previous_alert)
    sent = _kst(now)
    status = cap_status(exercise, test)
    polygons = cap_polygons(area.polygons, lib.common["cap"])
    infos = tuple(
        _info(change, area, polygons, language, tuple(audiences), status, sent, web, lib)
        for language in languages)
    return Alert(
        identifier=identifier or make_identifier(change, exercise, test), sender=sender, sent=sent,
        status=status, msg_type=msg_type, scope="Restricted" if area.unplaced else "Public",
        restriction=_restriction(area, lib), note=_marked_note(status, languages, lib),
        references=reference_chain(previous_alert), infos=infos)


def _restriction(area: AreaFacts, lib: Library) -> str | None:
    """Why an alert is for operators only: no loaded district holds its area, so it reaches no place."""
    if not area.unplaced:
        return None
    reason_ko, reason_en = UNPLACED[area.unplaced]
    return lib.common["cap"]["restriction_unplaced"].format(reason_ko=reason_ko, reason_en=reason_en)


#: CAP statuses that are not for the public, and the ``common.toml`` table of their marks.
MARKED = {"Exercise": "exercise", "Test": "test"}


def cap_status(exercise: bool, test: bool = False) -> str:
    """Test, Exercise or Actual. A test wins: its warning is kept out of the public like a drill's."""
    return "Test" if test else "Exercise" if exercise else "Actual"


def make_identifier(change: Change, exercise: bool, test: bool = False, piece: int = 0) -> str:
    """``haechi.<hazard>.<area>.<UTC time>.<kind>`` (``.exercise`` for drills, ``.test`` for tests):
    no spaces or commas. The alert of a piece other than the first of an area in pieces (see
    :func:`contiguous_pieces`) has ``.part<n>`` after the kind."""
    area = re.sub(r"[^A-Za-z0-9_-]+", "-", change.area)
    utc = _kst(change.at).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    status = cap_status(exercise, test)
    return ".".join(["haechi", change.hazard, area, utc, change.kind] + ([f"{PART}{piece + 1}"] if piece else [])
                    + ([MARKED[status]] if status in MARKED else []))


def piece_identifier(identifier: str, piece: int) -> str:
    """The identifier of ``piece`` of the alerts :func:`make_identifier` named ``identifier`` (piece 0)."""
    if not piece:
        return identifier
    parts = identifier.split(".")
    return ".".join([*parts[:5], f"{PART}{piece + 1}", *parts[5:]])


def piece_of(identifier: str) -> int:
    """Which piece of its area an alert covers (0 for the first, or an area in one piece)."""
    parts = identifier.split(".")
    found = parts[5] if len(parts) > 5 and parts[0] == "haechi" else ""
    return int(found.removeprefix(PART)) - 1 if found.startswith(PART) and found[len(PART):].isdigit() else 0


#: The mark of a piece's alert in its identifier (``.part2``).
PART = "part"


def identifier_time(identifier: str) -> datetime | None:
    """The time of the change a :func:`make_identifier` identifier names (UTC, to the second), or
    None for an identifier made otherwise. A new engine leader reads what was already decided from it."""
    parts = identifier.split(".")
    if len(parts) < 5 or parts[0] != "haechi":
        return None
    try:
        return datetime.strptime(parts[3], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def reference_chain(previous: Alert | None) -> tuple[Reference, ...]:
    """The messages an update or cancel refers to: the previous one and all it referred to."""
    if previous is None:
        return ()
    return tuple(dict.fromkeys((*previous.references, previous.reference())))


def _msg_type(change: Change, previous_alert: Alert | None) -> str:
    if change.kind not in MSG_TYPES:
        raise InvalidInput(f"unknown change kind {change.kind!r}", field="kind")
    if change.kind != "issue" and previous_alert is None:
        raise InvalidInput(f"an {change.kind} must reference the alert it follows", field="references")
    if (change.criterion or change.previous) is None:
        raise InvalidInput("a change needs the level in force or the level it ends", field="criterion")
    return MSG_TYPES[change.kind]


def _check_choices(chosen: Iterable[str], known: Sequence[str], what: str) -> None:
    unknown = [c for c in chosen if c not in known]
    if unknown:
        raise InvalidInput(f"unknown {what} {unknown[0]!r}: one of {', '.join(known)}", field=what)


def _check_area(area: AreaFacts) -> None:
    area.name("ko")
    if not (area.polygons or area.circles or area.geocodes or area.unplaced):  # unplaced: areaDesc only, kept
        raise InvalidInput("an alert needs an area: a polygon, a circle or a geocode", field="area")
    bad = [code for code in area.geocodes if not GEOCODE_DIGITS.match(code)]
    if bad:
        raise InvalidInput(f"geocode {bad[0]!r} is not a 10-digit 행정표준코드", field="geocode")


def _check_sender(sender: str) -> None:
    if not sender or re.search(r"[\s,<&]", sender):
        raise InvalidInput(f"sender {sender!r} must be non-empty, without spaces, commas, '<' or '&' "
                           "(e.g. haechi@seoul.go.kr)", field="sender")


def _marked_note(status: str, languages: Sequence[str], lib: Library) -> str | None:
    """A drill's or a test's ``<note>``: its mark and note in every language."""
    if status not in MARKED:
        return None
    marks = lib.common[MARKED[status]]
    return " / ".join(f"{marks[lang]['mark']} {marks[lang]['note']}" for lang in languages)


# ── one <info> ─────────────────────────────────────────────────────────────────────────

def _info(change: Change, area: AreaFacts, polygons: tuple[tuple[Point, ...], ...], language: str,
          audiences: tuple[str, ...], status: str, sent: datetime, web: str | None,
          lib: Library) -> Info:
    shown = change.criterion or change.previous
    assert shown is not None  # _msg_type refused it
    context = message_context(change, area, language, lib)
    texts = _texts(change, language, lib)
    headline, description = render(texts["headline"], context), render(texts["description"], context)
    instruction = _instruction(change, texts, context, audiences, language, lib)
    if status in MARKED:
        mark, note = (lib.common[MARKED[status]][language][k] for k in ("mark", "note"))
        headline, description = f"{mark} {headline}", f"{mark} {note}\n\n{description}"
    cap_values = ALL_CLEAR if change.kind == "cancel" else _cap_values(shown, lib)
    hazard = lib.hazard(change.hazard)["hazard"]
    return Info(
        language=lib.common["language"][language]["tag"], categories=tuple(hazard["categories"]),
        event=_event(change.hazard, context, language, lib), response_types=tuple(cap_values["response_types"]),
        urgency=cap_values["urgency"], severity=cap_values["severity"], certainty=cap_values["certainty"],
        audience=_audience_text(audiences, language, lib), event_codes=_event_codes(change.hazard, shown),
        effective=sent, onset=None if change.kind == "cancel" else _kst(change.onset or change.at),
        expires=sent + _expiry(change, lib),
        sender_name=render(lib.common["sender_name"][language], context),
        headline=headline, description=description, instruction=instruction, web=web,
        contact=lib.common["contact"][language],
        parameters=_parameters(change, shown, area, audiences),
        areas=(_cap_area(area, polygons, language, lib),))


def _event(hazard: str, context: Mapping[str, str], language: str, lib: Library) -> str:
    """The hazard's own event name where its messages give one (a level's name can be too long for
    aggregators), else the level's name."""
    named = lib.hazard(hazard)["hazard"].get("event", {}).get(language)
    return named or _capitalised(context["level"])


def _texts(change: Change, language: str, lib: Library) -> dict[str, str]:
    """The headline, description (and instruction) templates of this kind of change."""
    if change.kind == "cancel":
        return lib.cancel_text(change.hazard, language)
    level = lib.level_text(change.hazard, change.criterion.level, language)
    if change.kind == "update" and change.previous is not None:
        raised = change.criterion.rank >= change.previous.rank
        return {**level, **lib.update_text("raised" if raised else "lowered", language)}
    return level


def _instruction(change: Change, texts: Mapping[str, str], context: Mapping[str, str],
                 audiences: tuple[str, ...], language: str, lib: Library) -> str:
    """The level's instruction, then the guidance for each audience (none for an all-clear)."""
    parts = [render(texts["instruction"], context)]
    if change.kind != "cancel" and change.hazard in lib.guidance:
        parts += [lib.guidance_text(change.hazard, audience, language) for audience in audiences]
    return "\n\n".join(parts)


def _cap_values(criterion: Criterion, lib: Library) -> dict[str, Any]:
    profile = lib.level_profile(criterion.hazard, criterion.level)
    return {"urgency": criterion.cap_urgency, "severity": criterion.cap_severity,
            "certainty": criterion.cap_certainty, "response_types": profile.get("response_types", ())}


def _audience_text(audiences: tuple[str, ...], language: str, lib: Library) -> str | None:
    if audiences == ("general",):
        return None
    separator = lib.common["language"][language]["separator"]
    return separator.join(lib.word("audience_names", a, language) for a in audiences)


def _expiry(change: Change, lib: Library) -> timedelta:
    if change.kind == "cancel":
        return duration(lib.common["cap"]["cancel_expires"])
    return duration(lib.hazard(change.hazard)["hazard"]["expires"])


def _event_codes(hazard: str, criterion: Criterion) -> tuple[ValuePair, ...]:
    return (ValuePair(HAZARD, hazard), ValuePair(LEVEL, criterion.level),
            ValuePair(CRISIS, criterion.crisis_level), ValuePair(CRISIS_KR, CRISIS_KO[criterion.crisis_level]))


def _parameters(change: Change, criterion: Criterion, area: AreaFacts,
                audiences: tuple[str, ...]) -> tuple[ValuePair, ...]:
    """The measurement and the rule behind the alert, its area key and the people it reaches."""
    pairs = [
        ("HAECHI-PROPERTY", criterion.property),
        ("HAECHI-VALUE", None if change.value is None else plain_number(change.value)),
        ("HAECHI-UNIT", criterion.unit),
        ("HAECHI-THRESHOLD", f"{criterion.operator} {plain_number(criterion.value)}"),
        ("HAECHI-WINDOW", iso_duration(criterion.window)),
        ("HAECHI-AGGREGATE", criterion.aggregate),
        ("HAECHI-PERSISTENCE", iso_duration(criterion.persistence)),
        ("HAECHI-CRITERION-SOURCE", criterion.source),
        ("HAECHI-OBSERVED-AT", cap_time(_kst(change.at))),
        ("HAECHI-FORECAST-FOR", change.onset and cap_time(_kst(change.onset))),
        ("HAECHI-AREA", change.area),
        ("HAECHI-PREVIOUS-LEVEL", change.previous.level if change.kind == "update" and change.previous else None),
        (AUDIENCES, " ".join(audiences)),
        *((f"HAECHI-AFFECTED-{key.upper()}", str(count)) for key, count in sorted(area.counts.items())),
    ]
    return tuple(ValuePair(name, value) for name, value in pairs if value is not None)


def _cap_area(area: AreaFacts, polygons: tuple[tuple[Point, ...], ...], language: str,
              lib: Library) -> Area:
    decimals = lib.common["cap"]["coordinate_decimals"]
    return Area(
        area_desc=area.name(language), polygons=polygons,
        circles=tuple(Circle(round(lat, decimals), round(lon, decimals), round(r, 3))
                      for lat, lon, r in area.circles),
        geocodes=tuple(ValuePair(lib.common["cap"]["geocode_name"], code) for code in area.geocodes))


# ── the words that fill the templates ──────────────────────────────────────────────────

def message_context(change: Change, area: AreaFacts, language: str, lib: Library) -> dict[str, str]:
    """Every placeholder of the templates, written in ``language`` (see messages.PLACEHOLDERS)."""
    shown = change.criterion or change.previous
    moment = _kst(change.at)
    value = lib.common["no_value"][language] if change.value is None else format_number(
        change.value, language, lib, shown.unit)
    previous = change.previous or shown
    return {
        "city": in_language({**lib.common["region"], **area.city}, language),
        "area": area.name(language),
        "date": format_date(moment, language, lib),
        "time": format_time(moment, language, lib),
        "value": value,
        "unit": lib.common["units"].get(shown.unit, {}).get(language, shown.unit),
        "threshold": format_number(shown.value, language, lib, shown.unit),
        "window": format_duration(shown.window, language, lib),
        "persistence": format_duration(shown.persistence, language, lib),
        "property": lib.common["properties"].get(shown.property, {}).get(language, shown.property),
        "crisis": lib.word("crisis", shown.crisis_level, language),
        "level": level_name(shown, language, lib),
        "previous_level": level_name(previous, language, lib),
    }


def level_name(criterion: Criterion, language: str, lib: Library) -> str:
    """The level's name in ``language``, e.g. 초미세먼지(PM2.5) 주의보, heavy rain warning."""
    template = lib.level_text(criterion.hazard, criterion.level, language)["name"]
    return render(template, {
        "property": lib.common["properties"].get(criterion.property, {}).get(language, criterion.property),
        "crisis": lib.word("crisis", criterion.crisis_level, language)})


def format_number(value: float, language: str, lib: Library, unit: str | None = None) -> str:
    """As people read a measurement: the unit's decimals (``common.toml``), else whole above 100,
    two decimals above 1 and four below; trailing zeros dropped, the language's decimal mark."""
    digits = lib.common["units"].get(unit, {}).get("decimals")
    if digits is None:
        digits = 0 if abs(value) >= 100 else 2 if abs(value) >= 1 else 4
    text = f"{value:.{digits}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text.replace(".", lib.common["language"][language]["decimal"])


def format_date(moment: datetime, language: str, lib: Library) -> str:
    formats = lib.common["time"][language]
    names = formats.get("month_names")
    return formats["date"].format(month=moment.month, day=moment.day,
                                  month_name=names[moment.month - 1] if names else moment.month)


def format_time(moment: datetime, language: str, lib: Library) -> str:
    formats = lib.common["time"][language]
    pattern = formats["time_on_the_hour"] if moment.minute == 0 else formats["time"]
    return pattern.format(hour=moment.hour, minute=moment.minute)


def format_duration(span: timedelta, language: str, lib: Library) -> str:
    words = lib.common["duration"][language]
    seconds = int(span.total_seconds())
    if seconds == 0:
        return words["instant"]
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            n = seconds // size
            return words[f"{unit}_{'one' if n == 1 else 'other'}"].format(n=n)
    return words["minute_other"].format(n=round(seconds / 60))


def iso_duration(span: timedelta) -> str:
    """ISO 8601 as the criteria files write it: P2D, PT3H, PT10M, PT0S."""
    days, rest = divmod(int(span.total_seconds()), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    time = "".join(f"{n}{u}" for n, u in ((hours, "H"), (minutes, "M"), (seconds, "S")) if n)
    return ("P" + (f"{days}D" if days else "") + (f"T{time}" if time else "")) if days or time else "PT0S"


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def _kst(moment: datetime) -> datetime:
    """In Korean Standard Time, to the second (CAP times carry no fractions)."""
    if moment.tzinfo is None:
        raise InvalidInput(f"{moment.isoformat()} has no time zone", field="time")
    return moment.astimezone(KST).replace(microsecond=0)


# ── polygons: closed, rounded, simplified ──────────────────────────────────────────────

def cap_polygons(rings: Iterable[Ring], settings: Mapping[str, int]) -> tuple[tuple[Point, ...], ...]:
    """CAP polygons from (lat, lon) rings: pieces close together joined, closed, rounded, each
    simplified to its share of points."""
    rings = join_nearby(list(rings), settings["join_within_m"])
    if not rings:
        return ()
    share = settings["max_total_points"] // len(rings)
    limit = max(settings["min_polygon_points"], min(settings["max_polygon_points"], share))
    return tuple(simplify_ring(ring, limit, settings["coordinate_decimals"]) for ring in rings)


def contiguous_pieces(area: AreaFacts, settings: Mapping[str, Any],
                      shapes_of: Callable[[Sequence[str]], Mapping[str, shapely.Geometry]]) -> list[AreaFacts]:
    """The area as aggregators want it, one contiguous piece per alert (Google's profile): its
    polygons with pieces less than ``join_within_m`` apart joined, largest first; each piece keeps
    the geocodes whose areas meet it (``shapes_of`` gives them in lon/lat; a code of unknown shape
    stays in every piece) and the circles nearest it. An area in one piece is itself."""
    rings = join_nearby(list(area.polygons), settings["join_within_m"])
    if len(rings) < 2:
        return [area]
    shapes = [shapely.Polygon([(lon, lat) for lat, lon in ring]) for ring in rings]
    order = sorted(range(len(rings)), key=lambda n: (-shapes[n].area, shapes[n].bounds))
    known = shapes_of(area.geocodes)
    nearest = [min(order, key=lambda n: shapes[n].distance(shapely.Point(lon, lat))) for lat, lon, _ in area.circles]
    return [replace(
        area, polygons=(rings[n],),
        geocodes=tuple(g for g in area.geocodes if g not in known or known[g].intersects(shapes[n])),
        circles=tuple(c for c, piece in zip(area.circles, nearest, strict=True) if piece == n))
        for n in order]


def join_nearby(rings: list[Ring], within_m: float) -> list[Ring]:
    """The rings, with pieces less than ``within_m`` apart joined into one polygon by a narrow
    corridor between their nearest points, so an area whose boundary comes in pieces (a district's
    detached slivers, a dong across a road) is one contiguous area, as aggregators want of an
    alert. Pieces farther apart stay separate (the profile checker reports them)."""
    if len(rings) < 2:
        return rings
    squash = math.cos(math.radians(sum(lat for ring in rings for lat, _ in ring) / sum(len(r) for r in rings)))
    pieces = [shapely.Polygon([(lon * squash, lat) for lat, lon in ring]).buffer(0) for ring in rings]
    reach, half_width = within_m / METRES_PER_DEGREE, CORRIDOR_M / 2 / METRES_PER_DEGREE
    joined = shapely.unary_union(pieces)
    while len(parts := list(getattr(joined, "geoms", [joined]))) > 1:  # the closest two parts, until none in reach
        first, *rest = sorted(parts, key=lambda p: -p.area)
        others = shapely.unary_union(rest)
        if first.distance(others) > reach:
            break
        joined = shapely.unary_union([joined, _corridor(first, others, half_width)])
    joined = shapely.affinity.scale(joined, xfact=1 / squash, yfact=1, origin=(0, 0))
    return [tuple((lat, lon) for lon, lat in part.exterior.coords)
            for part in getattr(joined, "geoms", [joined]) if isinstance(part, shapely.Polygon) and not part.is_empty]


def _corridor(one: shapely.Geometry, other: shapely.Geometry, half_width: float) -> shapely.Geometry:
    return shapely.LineString(shapely.ops.nearest_points(one, other)).buffer(half_width)


#: Metres in a degree of latitude (the mean; enough to say how close two pieces are).
METRES_PER_DEGREE = 111_320
#: Width of the corridor joining two pieces of one area: wide enough to survive rounding to five
#: decimals (~1 m) and simplification, narrow enough to alert almost no one outside the area.
CORRIDOR_M = 40


def simplify_ring(ring: Ring, limit: int, decimals: int) -> tuple[Point, ...]:
    """A closed ring of at most ``limit`` points (Douglas–Peucker with topology kept)."""
    points = _closed_rounded(ring, decimals)
    if len(points) <= limit:
        return points
    polygon = shapely.Polygon([(lon, lat) for lat, lon in points])
    minx, miny, maxx, maxy = polygon.bounds
    tolerance = max(maxx - minx, maxy - miny) * 1e-4
    for _ in range(40):
        simpler = polygon.simplify(tolerance, preserve_topology=True)
        if isinstance(simpler, shapely.Polygon) and len(simpler.exterior.coords) <= limit:
            candidate = _closed_rounded([(lat, lon) for lon, lat in simpler.exterior.coords], decimals)
            if len(candidate) <= limit:
                return candidate
        tolerance *= 1.5
    return _closed_rounded([(lat, lon) for lon, lat in polygon.envelope.exterior.coords], decimals)


def _closed_rounded(ring: Ring, decimals: int) -> tuple[Point, ...]:
    points: list[Point] = []
    for lat, lon in ring:
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise InvalidInput(f"polygon point ({lat}, {lon}) is not (lat, lon) in WGS84", field="polygon")
        point = (round(float(lat), decimals), round(float(lon), decimals))
        if not points or points[-1] != point:
            points.append(point)
    if points and points[0] != points[-1]:
        points.append(points[0])
    if len(points) < 4:
        raise InvalidInput("a polygon needs at least 3 distinct points", field="polygon")
    return tuple(points)


def rings_from_geometry(geometry: shapely.Geometry) -> tuple[tuple[Point, ...], ...]:
    """The outer rings of a (multi)polygon in lon/lat (GeoJSON order) as (lat, lon) rings."""
    parts = getattr(geometry, "geoms", [geometry])
    return tuple(tuple((lat, lon) for lon, lat, *_ in part.exterior.coords)
                 for part in parts if isinstance(part, shapely.Polygon) and not part.is_empty)


# ── JSON with the guidance library, for channels that tailor by audience ───────────────

def to_json_with_guidance(alert: Alert, *, library: Library | None = None) -> dict[str, Any]:
    """:func:`cap.to_json` plus, in each ``info``, ``guidance``: ``{audience: text}`` for every
    audience (not a CAP element: channels trim it to a subscriber's audiences)."""
    lib = library or messages.library()
    data = to_json(alert)
    for block, info in zip(data.get("info", ()), alert.infos, strict=True):
        hazard, language = info.event_code(HAZARD), info.language.split("-")[0]
        if hazard in lib.guidance and language in lib.languages and alert.msg_type != "Cancel":
            block["guidance"] = {a: guidance_body(lib, hazard, a, language) for a in lib.audiences}
    return data


def guidance_body(lib: Library, hazard: str, audience: str, language: str) -> str:
    """The guidance lines as bullets, without the heading."""
    bullet = lib.common["guidance_layout"][language]["bullet"]
    return "\n".join(bullet + line for line in lib.guidance_lines(hazard, audience, language))
