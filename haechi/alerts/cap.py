"""OASIS CAP 1.2: the message model, XML encoding and decoding, schema validation, and JSON form.

Pure: no network, no database. :func:`validate` reads the official XSD once (see
``haechi/alerts/schema``). The model follows the standard's element names in snake case; every
repeated element is a tuple; times are aware datetimes, written as CAP wants them
(``2024-08-06T14:20:00+09:00``: seconds, an offset, no ``Z``, no fractions).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from lxml import etree

from haechi.core.errors import InvalidInput

NS = "urn:oasis:names:tc:emergency:cap:1.2"
STATUSES = ("Actual", "Exercise", "System", "Test", "Draft")
MSG_TYPES = ("Alert", "Update", "Cancel", "Ack", "Error")
SCOPES = ("Public", "Restricted", "Private")
CATEGORIES = ("Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env", "Transport",
              "Infra", "CBRNE", "Other")
RESPONSE_TYPES = ("Shelter", "Evacuate", "Prepare", "Execute", "Avoid", "Monitor", "Assess",
                  "AllClear", "None")
URGENCIES = ("Immediate", "Expected", "Future", "Past", "Unknown")
SEVERITIES = ("Extreme", "Severe", "Moderate", "Minor", "Unknown")
CERTAINTIES = ("Observed", "Likely", "Possible", "Unlikely", "Unknown")

#: A point as CAP writes it: (latitude, longitude) in WGS84 degrees.
Point = tuple[float, float]


class CapInvalid(InvalidInput):
    """A CAP message that breaks the schema or the standard; ``field`` names the element."""

    title = "Invalid CAP message"


# ── the model ──────────────────────────────────────────────────────────────────────────

@dataclass(frozen=True, slots=True)
class ValuePair:
    """``eventCode``, ``parameter`` and ``geocode``: a system-specific name and its value."""

    value_name: str
    value: str


@dataclass(frozen=True, slots=True)
class Circle:
    """A circle: its centre and its radius in kilometres."""

    lat: float
    lon: float
    radius_km: float

    def text(self) -> str:
        return f"{plain_number(self.lat)},{plain_number(self.lon)} {plain_number(self.radius_km)}"

    @classmethod
    def parse(cls, text: str) -> Circle:
        try:
            centre, radius = text.split()
            lat, lon = centre.split(",")
            return cls(float(lat), float(lon), float(radius))
        except ValueError:
            raise CapInvalid(f"circle {text!r} is not 'lat,lon radius'", field="circle") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class Area:
    area_desc: str
    polygons: tuple[tuple[Point, ...], ...] = ()
    circles: tuple[Circle, ...] = ()
    geocodes: tuple[ValuePair, ...] = ()
    altitude: float | None = None
    ceiling: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Resource:
    resource_desc: str
    mime_type: str
    size: int | None = None
    uri: str | None = None
    deref_uri: str | None = None
    digest: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Info:
    """One ``<info>``: the alert told in one language (and, optionally, for one audience)."""

    language: str
    categories: tuple[str, ...]
    event: str
    urgency: str
    severity: str
    certainty: str
    response_types: tuple[str, ...] = ()
    audience: str | None = None
    event_codes: tuple[ValuePair, ...] = ()
    effective: datetime | None = None
    onset: datetime | None = None
    expires: datetime | None = None
    sender_name: str | None = None
    headline: str | None = None
    description: str | None = None
    instruction: str | None = None
    web: str | None = None
    contact: str | None = None
    parameters: tuple[ValuePair, ...] = ()
    resources: tuple[Resource, ...] = ()
    areas: tuple[Area, ...] = ()

    def parameter(self, name: str) -> str | None:
        return next((p.value for p in self.parameters if p.value_name == name), None)

    def event_code(self, name: str) -> str | None:
        return next((p.value for p in self.event_codes if p.value_name == name), None)


@dataclass(frozen=True, slots=True)
class Reference:
    """An earlier message this one refers to: CAP's ``sender,identifier,sent``."""

    sender: str
    identifier: str
    sent: datetime

    def text(self) -> str:
        return f"{self.sender},{self.identifier},{cap_time(self.sent)}"

    @classmethod
    def parse(cls, text: str) -> Reference:
        parts = text.split(",")
        if len(parts) != 3:
            raise CapInvalid(f"reference {text!r} is not 'sender,identifier,sent'", field="references")
        return cls(parts[0], parts[1], parse_time(parts[2], "references"))


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert:
    identifier: str
    sender: str
    sent: datetime
    status: str
    msg_type: str
    scope: str = "Public"
    source: str | None = None
    restriction: str | None = None
    addresses: str | None = None
    codes: tuple[str, ...] = ()
    note: str | None = None
    references: tuple[Reference, ...] = ()
    incidents: str | None = None
    infos: tuple[Info, ...] = ()

    def reference(self) -> Reference:
        """How a later message (an update, a cancel) refers to this one."""
        return Reference(self.sender, self.identifier, self.sent)

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(i.language for i in self.infos))


# ── times and numbers ──────────────────────────────────────────────────────────────────

def cap_time(moment: datetime) -> str:
    """``YYYY-MM-DDThh:mm:ss±hh:mm`` as CAP 1.2 requires (an aware time; UTC is ``+00:00``)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise CapInvalid(f"{moment!r} has no UTC offset; CAP times carry one")
    return moment.replace(microsecond=0).isoformat(timespec="seconds")


_CAP_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[-+]\d\d:\d\d$")


def parse_time(text: str, element: str) -> datetime:
    text = text.strip()
    if not _CAP_TIME.match(text):
        raise CapInvalid(f"<{element}> {text!r} is not a CAP time such as 2024-08-06T14:20:00+09:00",
                         field=element)
    return datetime.fromisoformat(text)


def plain_number(value: float) -> str:
    """The shortest text that reads back as the same float, never in exponent form (37.5, 127)."""
    text = repr(float(value))
    if "e" in text or "E" in text:
        text = f"{value:.10f}".rstrip("0").rstrip(".")
    return text.removesuffix(".0") if text.endswith(".0") else text


def polygon_text(points: tuple[Point, ...]) -> str:
    return " ".join(f"{plain_number(lat)},{plain_number(lon)}" for lat, lon in points)


def parse_polygon(text: str) -> tuple[Point, ...]:
    try:
        return tuple((float(a), float(b)) for a, b in (pair.split(",") for pair in text.split()))
    except ValueError:
        raise CapInvalid(f"polygon {text[:60]!r}… is not space-separated 'lat,lon' pairs",
                         field="polygon") from None


# ── XML ────────────────────────────────────────────────────────────────────────────────

def _q(name: str) -> str:
    return f"{{{NS}}}{name}"


def _add(parent: etree._Element, name: str, value: Any) -> None:
    """A child element with ``value`` as text; nothing when the value is None."""
    if value is None:
        return
    if isinstance(value, datetime):
        value = cap_time(value)
    elif isinstance(value, float):
        value = plain_number(value)
    etree.SubElement(parent, _q(name)).text = str(value)


def _add_pairs(parent: etree._Element, name: str, pairs: tuple[ValuePair, ...]) -> None:
    for pair in pairs:
        node = etree.SubElement(parent, _q(name))
        _add(node, "valueName", pair.value_name)
        _add(node, "value", pair.value)


def _area_xml(parent: etree._Element, area: Area) -> None:
    node = etree.SubElement(parent, _q("area"))
    _add(node, "areaDesc", area.area_desc)
    for polygon in area.polygons:
        _add(node, "polygon", polygon_text(polygon))
    for circle in area.circles:
        _add(node, "circle", circle.text())
    _add_pairs(node, "geocode", area.geocodes)
    _add(node, "altitude", area.altitude)
    _add(node, "ceiling", area.ceiling)


def _resource_xml(parent: etree._Element, resource: Resource) -> None:
    node = etree.SubElement(parent, _q("resource"))
    for name, value in (("resourceDesc", resource.resource_desc), ("mimeType", resource.mime_type),
                        ("size", resource.size), ("uri", resource.uri), ("derefUri", resource.deref_uri),
                        ("digest", resource.digest)):
        _add(node, name, value)


def _info_xml(parent: etree._Element, info: Info) -> None:
    node = etree.SubElement(parent, _q("info"))
    _add(node, "language", info.language)
    for category in info.categories:
        _add(node, "category", category)
    _add(node, "event", info.event)
    for response in info.response_types:
        _add(node, "responseType", response)
    for name in ("urgency", "severity", "certainty", "audience"):
        _add(node, name, getattr(info, name))
    _add_pairs(node, "eventCode", info.event_codes)
    for name, value in (("effective", info.effective), ("onset", info.onset), ("expires", info.expires),
                        ("senderName", info.sender_name), ("headline", info.headline),
                        ("description", info.description), ("instruction", info.instruction),
                        ("web", info.web), ("contact", info.contact)):
        _add(node, name, value)
    _add_pairs(node, "parameter", info.parameters)
    for resource in info.resources:
        _resource_xml(node, resource)
    for area in info.areas:
        _area_xml(node, area)


def to_element(alert: Alert) -> etree._Element:
    root = etree.Element(_q("alert"), nsmap={None: NS})
    for name, value in (("identifier", alert.identifier), ("sender", alert.sender), ("sent", alert.sent),
                        ("status", alert.status), ("msgType", alert.msg_type), ("source", alert.source),
                        ("scope", alert.scope), ("restriction", alert.restriction),
                        ("addresses", alert.addresses)):
        _add(root, name, value)
    for code in alert.codes:
        _add(root, "code", code)
    _add(root, "note", alert.note)
    if alert.references:
        _add(root, "references", " ".join(r.text() for r in alert.references))
    _add(root, "incidents", alert.incidents)
    for info in alert.infos:
        _info_xml(root, info)
    return root


def to_xml(alert: Alert, *, pretty: bool = True) -> bytes:
    """The alert as a UTF-8 CAP 1.2 document (with its XML declaration)."""
    return etree.tostring(to_element(alert), xml_declaration=True, encoding="UTF-8", pretty_print=pretty)


# ── reading XML back ───────────────────────────────────────────────────────────────────

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=True, huge_tree=False)


def _parse(xml: bytes | str) -> etree._Element:
    if isinstance(xml, str):
        xml = xml.encode("utf-8")
    try:
        root = etree.fromstring(xml, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise CapInvalid(f"not well-formed XML: {exc}") from None
    if root.getroottree().docinfo.doctype:
        raise CapInvalid("a CAP message carries no DOCTYPE (entities are refused)")
    return root


def _local(node: etree._Element) -> str:
    return etree.QName(node).localname


def _children(node: etree._Element) -> list[tuple[str, etree._Element]]:
    return [(_local(c), c) for c in node if isinstance(c.tag, str)]


def _text(node: etree._Element) -> str:
    return (node.text or "").strip()


def _first(node: etree._Element, name: str) -> str | None:
    found = node.find(_q(name))
    return None if found is None else _text(found)


def _all(node: etree._Element, name: str) -> tuple[str, ...]:
    return tuple(_text(c) for c in node.findall(_q(name)))


def _required(node: etree._Element, name: str) -> str:
    value = _first(node, name)
    if value is None:
        raise CapInvalid(f"<{_local(node)}> has no <{name}>", field=name)
    return value


def _pairs(node: etree._Element, name: str) -> tuple[ValuePair, ...]:
    return tuple(ValuePair(_required(c, "valueName"), _required(c, "value")) for c in node.findall(_q(name)))


def _time(node: etree._Element, name: str) -> datetime | None:
    value = _first(node, name)
    return None if value is None else parse_time(value, name)


def _float(node: etree._Element, name: str) -> float | None:
    value = _first(node, name)
    return None if value is None else float(value)


def _area_from(node: etree._Element) -> Area:
    return Area(
        area_desc=_required(node, "areaDesc"),
        polygons=tuple(parse_polygon(p) for p in _all(node, "polygon")),
        circles=tuple(Circle.parse(c) for c in _all(node, "circle")),
        geocodes=_pairs(node, "geocode"), altitude=_float(node, "altitude"), ceiling=_float(node, "ceiling"))


def _resource_from(node: etree._Element) -> Resource:
    size = _first(node, "size")
    return Resource(
        resource_desc=_required(node, "resourceDesc"), mime_type=_required(node, "mimeType"),
        size=None if size is None else int(size), uri=_first(node, "uri"),
        deref_uri=_first(node, "derefUri"), digest=_first(node, "digest"))


def _info_from(node: etree._Element) -> Info:
    return Info(
        language=_first(node, "language") or "en-US", categories=_all(node, "category"),
        event=_required(node, "event"), response_types=_all(node, "responseType"),
        urgency=_required(node, "urgency"), severity=_required(node, "severity"),
        certainty=_required(node, "certainty"), audience=_first(node, "audience"),
        event_codes=_pairs(node, "eventCode"), effective=_time(node, "effective"),
        onset=_time(node, "onset"), expires=_time(node, "expires"),
        sender_name=_first(node, "senderName"), headline=_first(node, "headline"),
        description=_first(node, "description"), instruction=_first(node, "instruction"),
        web=_first(node, "web"), contact=_first(node, "contact"), parameters=_pairs(node, "parameter"),
        resources=tuple(_resource_from(r) for r in node.findall(_q("resource"))),
        areas=tuple(_area_from(a) for a in node.findall(_q("area"))))


def from_element(root: etree._Element) -> Alert:
    if root.tag != _q("alert"):
        raise CapInvalid(f"the root element is {root.tag!r}, not a CAP 1.2 <alert> in {NS}", field="alert")
    references = _first(root, "references")
    return Alert(
        identifier=_required(root, "identifier"), sender=_required(root, "sender"),
        sent=parse_time(_required(root, "sent"), "sent"), status=_required(root, "status"),
        msg_type=_required(root, "msgType"), source=_first(root, "source"),
        scope=_required(root, "scope"), restriction=_first(root, "restriction"),
        addresses=_first(root, "addresses"), codes=_all(root, "code"), note=_first(root, "note"),
        references=tuple(Reference.parse(r) for r in (references or "").split()),
        incidents=_first(root, "incidents"),
        infos=tuple(_info_from(i) for i in root.findall(_q("info"))))


def from_xml(xml: bytes | str) -> Alert:
    """The model of a CAP 1.2 document (call :func:`validate` first to check it)."""
    return from_element(_parse(xml))


# ── validation ─────────────────────────────────────────────────────────────────────────

@cache
def _schema() -> etree.XMLSchema:
    from haechi.alerts.schema import xsd_path

    return etree.XMLSchema(etree.parse(str(xsd_path()), _PARSER))


_ELEMENT_IN_MESSAGE = re.compile(r"Element '(?:\{[^}]*\})?([^']+)'")
_ONE_EXPECTED = re.compile(r"Expected is \( (?:\{[^}]*\})?(\w+) \)")
_RESTRICTED = re.compile(r"[\s,<&]")


def _schema_error(log: etree._ListErrorLog) -> CapInvalid:
    """The first schema error, naming the element at fault: the one missing when a single element
    was expected, else the one where validation stopped."""
    entry = log[0]
    message = entry.message.replace(f"{{{NS}}}", "")
    found = _ELEMENT_IN_MESSAGE.search(entry.message)
    missing = _ONE_EXPECTED.search(entry.message)
    element = missing.group(1) if missing else found.group(1) if found else None
    if missing and found and "not expected" in entry.message:
        summary = f"<{element}> is missing (or out of order) before <{found.group(1)}>"
    elif missing:
        summary = f"<{element}> is missing in <{found.group(1) if found else '?'}>"
    elif "not expected" in entry.message:
        summary = f"<{element}> is not expected there"
    else:
        summary = f"<{element}> is invalid" if element else "the document is invalid"
    return CapInvalid(f"CAP 1.2 schema, line {entry.line}: {summary}. {message}", field=element)


def _check_polygon(text: str) -> None:
    points = parse_polygon(text)
    if len(points) < 4 or points[0] != points[-1]:
        raise CapInvalid("a <polygon> needs at least 4 'lat,lon' pairs, the first equal to the last",
                         field="polygon")
    for lat, lon in points:
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise CapInvalid(f"<polygon> point {lat},{lon} is not WGS84 'lat,lon'", field="polygon")


def _check_standard(root: etree._Element) -> None:
    """Rules of the CAP 1.2 text that its XSD does not express."""
    for name in ("identifier", "sender"):
        value = _first(root, name) or ""
        if _RESTRICTED.search(value):
            raise CapInvalid(f"<{name}> {value!r} must not contain spaces, commas, '<' or '&'", field=name)
    for text in (_first(root, "references") or "").split():
        Reference.parse(text)
    for polygon in root.iter(_q("polygon")):
        _check_polygon(_text(polygon))
    for circle in root.iter(_q("circle")):
        Circle.parse(_text(circle))


def validate(xml: bytes | str) -> None:
    """Raise :class:`CapInvalid` naming the element unless ``xml`` is a valid CAP 1.2 message.

    Checks the official OASIS XSD, then the standard's rules the XSD cannot say (identifier and
    sender characters, references, closed polygons of four or more points, circles).
    """
    root = _parse(xml)
    schema = _schema()
    try:
        valid = schema.validate(root)
    except etree.XMLSchemaValidateError as exc:
        raise CapInvalid(f"CAP 1.2 schema: the document cannot be validated ({exc})") from None
    if not valid:
        raise _schema_error(schema.error_log)
    _check_standard(root)


# ── JSON: the same content, keyed by CAP's element names ───────────────────────────────

def _drop_empty(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None and v != [] and v != ()}


def _pairs_json(pairs: tuple[ValuePair, ...]) -> list[dict[str, str]]:
    return [{"valueName": p.value_name, "value": p.value} for p in pairs]


def _time_json(moment: datetime | None) -> str | None:
    return None if moment is None else cap_time(moment)


def _area_json(area: Area) -> dict[str, Any]:
    return _drop_empty({
        "areaDesc": area.area_desc, "polygon": [polygon_text(p) for p in area.polygons],
        "circle": [c.text() for c in area.circles], "geocode": _pairs_json(area.geocodes),
        "altitude": area.altitude, "ceiling": area.ceiling})


def _resource_json(resource: Resource) -> dict[str, Any]:
    return _drop_empty({
        "resourceDesc": resource.resource_desc, "mimeType": resource.mime_type, "size": resource.size,
        "uri": resource.uri, "derefUri": resource.deref_uri, "digest": resource.digest})


def _info_json(info: Info) -> dict[str, Any]:
    return _drop_empty({
        "language": info.language, "category": list(info.categories), "event": info.event,
        "responseType": list(info.response_types), "urgency": info.urgency, "severity": info.severity,
        "certainty": info.certainty, "audience": info.audience, "eventCode": _pairs_json(info.event_codes),
        "effective": _time_json(info.effective), "onset": _time_json(info.onset),
        "expires": _time_json(info.expires), "senderName": info.sender_name, "headline": info.headline,
        "description": info.description, "instruction": info.instruction, "web": info.web,
        "contact": info.contact, "parameter": _pairs_json(info.parameters),
        "resource": [_resource_json(r) for r in info.resources], "area": [_area_json(a) for a in info.areas]})


def to_json(alert: Alert) -> dict[str, Any]:
    """The alert as a JSON-ready dict: CAP element names, repeated elements as lists, times as in
    the XML, ``references`` as a list of ``sender,identifier,sent`` strings."""
    return _drop_empty({
        "identifier": alert.identifier, "sender": alert.sender, "sent": cap_time(alert.sent),
        "status": alert.status, "msgType": alert.msg_type, "source": alert.source, "scope": alert.scope,
        "restriction": alert.restriction, "addresses": alert.addresses, "code": list(alert.codes),
        "note": alert.note, "references": [r.text() for r in alert.references],
        "incidents": alert.incidents, "info": [_info_json(i) for i in alert.infos]})


def _pairs_from_json(items: list[dict[str, str]] | None) -> tuple[ValuePair, ...]:
    return tuple(ValuePair(i["valueName"], i["value"]) for i in items or ())


def _opt_time(data: dict[str, Any], name: str) -> datetime | None:
    return None if data.get(name) is None else parse_time(data[name], name)


def _area_from_json(data: dict[str, Any]) -> Area:
    return Area(
        area_desc=data["areaDesc"], polygons=tuple(parse_polygon(p) for p in data.get("polygon", ())),
        circles=tuple(Circle.parse(c) for c in data.get("circle", ())),
        geocodes=_pairs_from_json(data.get("geocode")), altitude=data.get("altitude"),
        ceiling=data.get("ceiling"))


def _info_from_json(data: dict[str, Any]) -> Info:
    return Info(
        language=data.get("language", "en-US"), categories=tuple(data["category"]), event=data["event"],
        response_types=tuple(data.get("responseType", ())), urgency=data["urgency"],
        severity=data["severity"], certainty=data["certainty"], audience=data.get("audience"),
        event_codes=_pairs_from_json(data.get("eventCode")), effective=_opt_time(data, "effective"),
        onset=_opt_time(data, "onset"), expires=_opt_time(data, "expires"),
        sender_name=data.get("senderName"), headline=data.get("headline"),
        description=data.get("description"), instruction=data.get("instruction"), web=data.get("web"),
        contact=data.get("contact"), parameters=_pairs_from_json(data.get("parameter")),
        resources=tuple(Resource(
            resource_desc=r["resourceDesc"], mime_type=r["mimeType"], size=r.get("size"), uri=r.get("uri"),
            deref_uri=r.get("derefUri"), digest=r.get("digest")) for r in data.get("resource", ())),
        areas=tuple(_area_from_json(a) for a in data.get("area", ())))


def from_json(data: dict[str, Any]) -> Alert:
    """The model of :func:`to_json`'s form."""
    try:
        return Alert(
            identifier=data["identifier"], sender=data["sender"], sent=parse_time(data["sent"], "sent"),
            status=data["status"], msg_type=data["msgType"], source=data.get("source"),
            scope=data["scope"], restriction=data.get("restriction"), addresses=data.get("addresses"),
            codes=tuple(data.get("code", ())), note=data.get("note"),
            references=tuple(Reference.parse(r) for r in data.get("references", ())),
            incidents=data.get("incidents"), infos=tuple(_info_from_json(i) for i in data.get("info", ())))
    except KeyError as exc:
        raise CapInvalid(f"CAP JSON lacks {exc.args[0]!r}", field=exc.args[0]) from None
