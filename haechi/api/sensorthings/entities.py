"""The eight SensorThings entity types over the integrated DB's tables, and their JSON form. Pure.

OGC 18-088 §8 "Sensing entities" names each entity's properties and relations; this module says
which column holds each property, how it reads (``encode``) and is written (``decode``), and how
each navigation property joins two tables (``Link``). Reading, writing and ``$filter`` all work
from these tables, so a property is described once.

Differences from the standard's model, all from the shared schema: Locations and
FeaturesOfInterest have no ``properties``; Observations keep one instant as ``phenomenonTime``
(no intervals) and no ``validTime``; a HistoricalLocation has exactly one Location.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shapely.geometry import shape
from sqlalchemy import BigInteger, ColumnElement, FromClause, Select, Table, and_, func, select

from haechi.core.clock import as_utc
from haechi.store.schema import (
    datastreams,
    features_of_interest,
    historical_locations,
    locations,
    observations,
    observed_properties,
    sensors,
    thing_locations,
    things,
)

from .errors import BadRequest

OM_MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
GEOJSON_TYPES = ("application/geo+json", "application/vnd.geo+json")

Row = Mapping[str, Any]


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``, as 18-088 writes times."""
    return None if moment is None else as_utc(moment).isoformat().replace("+00:00", "Z")


# ── properties ────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class Prop:
    """One property of an entity type.

    ``kind`` says how ``$filter`` sees it: number, string, datetime (a column), json (a JSON
    column whose members are paths, ``properties/owner``), composite (``members`` name columns,
    ``unitOfMeasurement/symbol``), geometry or derived (not filterable).
    ``decode`` turns a request body's value into column values; None means read-only.
    ``derive`` adds computed columns to a read (a Datastream's time span).
    """

    name: str
    kind: str
    column: str | None
    encode: Callable[[Row], Any]
    decode: Callable[[Any, str], dict[str, Any]] | None = None
    required: bool = False
    members: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    derive: Callable[[FromClause], list[ColumnElement]] | None = None


def _text(column: str, max_length: int, *, allow_empty: bool = True) -> Callable[[Any, str], dict[str, Any]]:
    def decode(value: Any, label: str) -> dict[str, Any]:
        if not isinstance(value, str):
            raise BadRequest(f"{label} must be a string (got {type(value).__name__})", field=label)
        if len(value) > max_length or (not allow_empty and not value.strip()):
            raise BadRequest(f"{label} must be 1 to {max_length} characters", field=label)
        return {column: value}
    return decode


def _object(column: str) -> Callable[[Any, str], dict[str, Any]]:
    def decode(value: Any, label: str) -> dict[str, Any]:
        if value is not None and not isinstance(value, dict):
            raise BadRequest(f"{label} must be a JSON object or null", field=label)
        return {column: value}
    return decode


def _time(column: str) -> Callable[[Any, str], dict[str, Any]]:
    def decode(value: Any, label: str) -> dict[str, Any]:
        return {column: parse_time(value, label)}
    return decode


def parse_time(value: Any, label: str) -> datetime:
    """An ISO 8601 instant with a UTC offset; intervals and naive times are refused by name."""
    if not isinstance(value, str):
        raise BadRequest(f"{label} must be an ISO 8601 time such as 2020-08-06T05:00:00Z", field=label)
    if "/" in value:
        raise BadRequest(f"{label}: time intervals are not stored here; send one instant", field=label)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"{label}: {value!r} is not an ISO 8601 time", field=label) from None
    if moment.tzinfo is None:
        raise BadRequest(f"{label}: {value!r} needs a UTC offset (Z or +09:00)", field=label)
    return _in_utc_range(moment, label)


def _in_utc_range(moment: datetime, label: str) -> datetime:
    try:
        as_utc(moment)
    except OverflowError:
        raise BadRequest(f"{label}: {moment.isoformat()} lies outside the years 1–9999 in UTC", field=label) from None
    return moment


def check_geojson(value: Any, label: str) -> dict[str, Any]:
    """A GeoJSON geometry or Feature (RFC 7946) in WGS84 degrees."""
    if not isinstance(value, dict) or "type" not in value:
        raise BadRequest(f"{label} must be a GeoJSON geometry or Feature", field=label)
    geometry = value.get("geometry") if value["type"] == "Feature" else value
    try:
        parsed = shape(geometry)
    except Exception as exc:  # noqa: BLE001 - shapely raises several kinds for bad GeoJSON
        raise BadRequest(f"{label} is not valid GeoJSON: {exc}", field=label) from None
    if parsed.is_empty or not all(math.isfinite(c) for c in parsed.bounds):
        raise BadRequest(f"{label} has no coordinates", field=label)
    west, south, east, north = parsed.bounds
    if not (-180 <= west <= east <= 180 and -90 <= south <= north <= 90):
        raise BadRequest(f"{label} must be in WGS84 degrees (lon −180…180, lat −90…90)", field=label)
    return value


def _geometry(column: str) -> Callable[[Any, str], dict[str, Any]]:
    def decode(value: Any, label: str) -> dict[str, Any]:
        return {column: check_geojson(value, label)}
    return decode


def _geojson_encoding(value: Any, label: str) -> dict[str, Any]:
    if value not in GEOJSON_TYPES:
        raise BadRequest(f"{label} must be one of {', '.join(GEOJSON_TYPES)}", field=label)
    return {"encoding_type": value}


def _unit(value: Any, label: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest(f"{label} must be an object with name, symbol and definition", field=label)
    unknown = value.keys() - {"name", "symbol", "definition"}
    if unknown:
        raise BadRequest(f"{label}: unknown member {min(unknown)!r}", field=f"{label}.{min(unknown)}")
    limits = {"name": ("unit_name", 100), "symbol": ("unit_symbol", 32), "definition": ("unit_definition", 500)}
    row = {}
    for member, (column, max_length) in limits.items():
        given = value.get(member)
        row |= _text(column, max_length)("" if given is None else given, f"{label}.{member}")
    return row


def column(name: str, kind: str, col: str, decode=None, required: bool = False) -> Prop:
    def encode(row: Row) -> Any:
        return iso(row[col]) if kind == "datetime" else row[col]
    return Prop(name, kind, col, encode, decode, required)


def name_prop() -> Prop:
    return column("name", "string", "name", _text("name", 200, allow_empty=False), required=True)


def description_prop() -> Prop:
    return column("description", "string", "description", _text("description", 100_000))


def properties_prop(col: str = "properties", name: str = "properties") -> Prop:
    return Prop(name, "json", col, lambda row: row[col], _object(col))


def _first_last(table: FromClause) -> list[ColumnElement]:
    """A Datastream's first and last phenomenon time (two index look-ups each)."""
    o = observations.c
    return [
        select(extreme(o.phenomenon_time)).where(o.datastream_id == table.c.id).scalar_subquery().label(label)
        for extreme, label in ((func.min, "_first"), (func.max, "_last"))
    ]


def _span(row: Row) -> str | None:
    first, last = row.get("_first"), row.get("_last")
    if first is None:
        return None
    return iso(first) if first == last else f"{iso(first)}/{iso(last)}"


def _quality(row: Row) -> dict[str, Any]:
    return {"flag": row["result_quality"], "reasons": row["qc_reasons"] or []}


def _result(row: Row) -> Any:
    return row["result"] if row["result"] is not None else row["result_json"]


# ── navigation ────────────────────────────────────────────────────────────────────────────

Parents = int | Select  # one parent's id, or a query of parent ids


def _matches(col: ColumnElement, parents: Parents) -> ColumnElement[bool]:
    return col == parents if isinstance(parents, int) else col.in_(parents)


@dataclass(frozen=True, slots=True)
class ForeignKey:
    """The source row's ``column`` holds the target's id (Observation → Datastream)."""

    column: str

    def condition(self, source: FromClause, target: FromClause) -> ColumnElement[bool]:
        return target.c.id == source.c[self.column]

    def restrict(self, source: Table, target: FromClause, parents: Parents) -> ColumnElement[bool]:
        return target.c.id.in_(select(source.c[self.column]).where(_matches(source.c.id, parents)))

    def keyed(self, source: Table, target: FromClause) -> tuple[FromClause, ColumnElement]:
        parent = source.alias()
        return target.join(parent, parent.c[self.column] == target.c.id), parent.c.id


@dataclass(frozen=True, slots=True)
class Reverse:
    """The target rows' ``column`` holds the source's id (Datastream → Observations)."""

    column: str

    def condition(self, source: FromClause, target: FromClause) -> ColumnElement[bool]:
        return target.c[self.column] == source.c.id

    def restrict(self, source: Table, target: FromClause, parents: Parents) -> ColumnElement[bool]:
        return _matches(target.c[self.column], parents)

    def keyed(self, source: Table, target: FromClause) -> tuple[FromClause, ColumnElement]:
        return target, target.c[self.column]


@dataclass(frozen=True, slots=True)
class Association:
    """A link table pairs source and target ids (Things ↔ Locations)."""

    table: Table
    source_column: str
    target_column: str

    def condition(self, source: FromClause, target: FromClause) -> ColumnElement[bool]:
        pair = self.table.alias()  # joins the enclosing query through its own alias of the link table
        return and_(pair.c[self.source_column] == source.c.id, pair.c[self.target_column] == target.c.id)

    def restrict(self, source: Table, target: FromClause, parents: Parents) -> ColumnElement[bool]:
        pair = self.table.c
        return target.c.id.in_(select(pair[self.target_column]).where(_matches(pair[self.source_column], parents)))

    def keyed(self, source: Table, target: FromClause) -> tuple[FromClause, ColumnElement]:
        pair = self.table.alias()
        return target.join(pair, pair.c[self.target_column] == target.c.id), pair.c[self.source_column]


Link = ForeignKey | Reverse | Association


@dataclass(frozen=True, slots=True)
class Nav:
    """A navigation property: its name, the entity type it leads to, and how."""

    name: str
    target: str
    many: bool
    link: Link
    inverse: str


@dataclass(frozen=True, slots=True)
class EntityType:
    name: str  # singular, e.g. "Thing"
    plural: str  # the entity set, e.g. "Things"
    table: Table
    props: tuple[Prop, ...]
    navs: tuple[Nav, ...]

    def prop(self, name: str) -> Prop | None:
        return next((p for p in self.props if p.name == name), None)

    def nav(self, name: str) -> Nav | None:
        return next((n for n in self.navs if n.name == name), None)

    def columns(self, table: FromClause | None = None) -> list[ColumnElement]:
        """What a read selects: the table's columns and any derived ones."""
        table = self.table if table is None else table
        derived = [c for p in self.props if p.derive for c in p.derive(table)]
        return [*table.c, *derived]


def _id() -> Prop:
    return Prop("id", "number", "id", lambda row: row["id"])


THING = EntityType("Thing", "Things", things, (
    _id(), name_prop(), description_prop(), properties_prop(),
), (
    Nav("Locations", "Location", True, Association(thing_locations, "thing_id", "location_id"), "Things"),
    Nav("HistoricalLocations", "HistoricalLocation", True, Reverse("thing_id"), "Thing"),
    Nav("Datastreams", "Datastream", True, Reverse("thing_id"), "Thing"),
))

LOCATION = EntityType("Location", "Locations", locations, (
    _id(), name_prop(), description_prop(),
    column("encodingType", "string", "encoding_type", _geojson_encoding),
    Prop("location", "geometry", "location", lambda row: row["location"], _geometry("location"), required=True),
), (
    Nav("Things", "Thing", True, Association(thing_locations, "location_id", "thing_id"), "Locations"),
    Nav("HistoricalLocations", "HistoricalLocation", True, Reverse("location_id"), "Locations"),
))

HISTORICAL_LOCATION = EntityType("HistoricalLocation", "HistoricalLocations", historical_locations, (
    _id(), column("time", "datetime", "time", _time("time"), required=True),
), (
    Nav("Thing", "Thing", False, ForeignKey("thing_id"), "HistoricalLocations"),
    Nav("Locations", "Location", True, ForeignKey("location_id"), "HistoricalLocations"),
))

SENSOR = EntityType("Sensor", "Sensors", sensors, (
    _id(), name_prop(), description_prop(),
    column("encodingType", "string", "encoding_type", _text("encoding_type", 64, allow_empty=False)),
    column("metadata", "string", "metadata", _text("metadata", 100_000)),
    properties_prop(),
), (
    Nav("Datastreams", "Datastream", True, Reverse("sensor_id"), "Sensor"),
))

OBSERVED_PROPERTY = EntityType("ObservedProperty", "ObservedProperties", observed_properties, (
    _id(), name_prop(),
    column("definition", "string", "definition", _text("definition", 500, allow_empty=False), required=True),
    description_prop(), properties_prop(),
), (
    Nav("Datastreams", "Datastream", True, Reverse("observed_property_id"), "ObservedProperty"),
))

DATASTREAM = EntityType("Datastream", "Datastreams", datastreams, (
    _id(), name_prop(), description_prop(),
    Prop("unitOfMeasurement", "composite", None,
         lambda row: {"name": row["unit_name"], "symbol": row["unit_symbol"], "definition": row["unit_definition"]},
         _unit, required=True,
         members={"name": ("unit_name", "string"), "symbol": ("unit_symbol", "string"),
                  "definition": ("unit_definition", "string")}),
    column("observationType", "string", "observation_type", _text("observation_type", 200, allow_empty=False)),
    Prop("phenomenonTime", "derived", None, _span, derive=_first_last),
    properties_prop(),
), (
    Nav("Thing", "Thing", False, ForeignKey("thing_id"), "Datastreams"),
    Nav("Sensor", "Sensor", False, ForeignKey("sensor_id"), "Datastreams"),
    Nav("ObservedProperty", "ObservedProperty", False, ForeignKey("observed_property_id"), "Datastreams"),
    Nav("Observations", "Observation", True, Reverse("datastream_id"), "Datastream"),
))

#: Observations are written through the ingest pipeline (``observing``), so no ``decode`` here.
OBSERVATION = EntityType("Observation", "Observations", observations, (
    _id(),
    column("phenomenonTime", "datetime", "phenomenon_time"),
    column("resultTime", "datetime", "result_time"),
    Prop("result", "number", "result", _result),
    Prop("resultQuality", "composite", None, _quality, members={"flag": ("result_quality", "string")}),
    properties_prop("parameters", "parameters"),
), (
    Nav("Datastream", "Datastream", False, ForeignKey("datastream_id"), "Observations"),
    Nav("FeatureOfInterest", "FeatureOfInterest", False, ForeignKey("feature_of_interest_id"), "Observations"),
))

FEATURE_OF_INTEREST = EntityType("FeatureOfInterest", "FeaturesOfInterest", features_of_interest, (
    _id(), name_prop(), description_prop(),
    column("encodingType", "string", "encoding_type", _geojson_encoding),
    Prop("feature", "geometry", "feature", lambda row: row["feature"], _geometry("feature"), required=True),
), (
    Nav("Observations", "Observation", True, Reverse("feature_of_interest_id"), "FeatureOfInterest"),
))

ENTITY_TYPES: dict[str, EntityType] = {
    t.name: t for t in (THING, LOCATION, HISTORICAL_LOCATION, SENSOR, OBSERVED_PROPERTY, DATASTREAM,
                        OBSERVATION, FEATURE_OF_INTEREST)
}
ENTITY_SETS: dict[str, EntityType] = {t.plural: t for t in ENTITY_TYPES.values()}


def max_id(entity: EntityType) -> int:
    """The largest id the entity's key column holds (32-bit, 64-bit for Observations on PostgreSQL)."""
    return 2**63 - 1 if isinstance(entity.table.c.id.type, BigInteger) else 2**31 - 1


def target_of(nav: Nav) -> EntityType:
    return ENTITY_TYPES[nav.target]


# ── the JSON form (18-088 §9.2 "Resource path", control information §8.2) ─────────────────


def self_link(base: str, entity: EntityType, entity_id: int) -> str:
    return f"{base}/{entity.plural}({entity_id})"


def encode(
    entity: EntityType, row: Row, base: str, select: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """An entity as JSON: ``@iot.selfLink``, ``@iot.id``, properties, ``<Nav>@iot.navigationLink``.

    With ``$select`` only the named properties (``id`` → ``@iot.id``) and navigation links are
    written, as OData does; expanded navigations are added by the caller.
    """
    link = self_link(base, entity, row["id"])
    wanted = set(select) if select is not None else None
    out: dict[str, Any] = {}
    if wanted is None:
        out["@iot.selfLink"] = link
    if wanted is None or "id" in wanted:
        out["@iot.id"] = row["id"]
    for prop in entity.props:
        if prop.name != "id" and (wanted is None or prop.name in wanted):
            out[prop.name] = prop.encode(row)
    for nav in entity.navs:
        if wanted is None or nav.name in wanted:
            out[f"{nav.name}@iot.navigationLink"] = f"{link}/{nav.name}"
    return out


def check_select(entity: EntityType, select: tuple[str, ...] | None, option: str) -> None:
    """Every ``$select`` name is a property or navigation of ``entity``."""
    for name in select or ():
        if entity.prop(name) is None and entity.nav(name) is None:
            raise BadRequest(f"{option}: {entity.name} has no property {name!r}; it has "
                             f"{', '.join(known_names(entity))}", field=option)


def known_names(entity: EntityType) -> list[str]:
    return [p.name for p in entity.props] + [n.name for n in entity.navs]
