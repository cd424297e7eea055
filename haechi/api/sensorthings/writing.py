"""Creating, updating and deleting entities other than Observations (OGC 18-088 §10).

A POST may carry related entities inline (deep insert, §10.2.2) or link existing ones by
``{"@iot.id": n}`` (§10.2.1): a Thing with its Locations and Datastreams, each Datastream with
its Sensor and ObservedProperty. The whole tree is written in the caller's transaction, so it
lands entirely or not at all. Linking a Thing to Locations makes them its current Locations and
adds HistoricalLocations (§8.2.3). Observations are refused here: they are written through the
ingest pipeline (``observing``), so quality control sees every one.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from haechi.store import sensing

from .entities import (
    OBSERVATION,
    THING,
    Association,
    EntityType,
    ForeignKey,
    Nav,
    Reverse,
    known_names,
    max_id,
    target_of,
)
from .errors import BadRequest

CREATORS: dict[str, Callable[[Connection, dict[str, Any]], int]] = {
    "Thing": sensing.create_thing,
    "Location": sensing.create_location,
    "HistoricalLocation": sensing.create_historical_location,
    "Sensor": sensing.create_sensor,
    "ObservedProperty": sensing.create_observed_property,
    "Datastream": sensing.create_datastream,
    "FeatureOfInterest": sensing.create_feature,
}
CONTROL = frozenset({"@iot.selfLink"})  # read-only control information a client may echo back


def _object(body: Any, label: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest(f"{label} must be a JSON object", field=label)
    return body


def _list(value: Any, label: str) -> list[Any]:
    if not isinstance(value, list):
        raise BadRequest(f"{label} must be a JSON array of entities or links", field=label)
    return value


def link_id(body: dict[str, Any], label: str) -> int | None:
    """The id of a link ``{"@iot.id": n}``; None when ``body`` is an inline entity.

    18-088 §10.2.1: an object with ``@iot.id`` refers to the existing entity. Clients often send
    the entity as they read it; its other members describe it and change nothing.
    """
    if "@iot.id" not in body:
        return None
    entity_id = body["@iot.id"]
    if isinstance(entity_id, bool) or not isinstance(entity_id, int) or entity_id <= 0:
        raise BadRequest(f"{label}.@iot.id must be a positive integer", field=f"{label}.@iot.id")
    return entity_id


def decode_properties(entity: EntityType, body: dict[str, Any], label: str, *, required: bool) -> dict[str, Any]:
    """Column values of the body's properties; unknown and read-only names are refused."""
    row: dict[str, Any] = {}
    for key, value in body.items():
        prop = entity.prop(key)
        if prop is None and entity.nav(key) is None and key not in CONTROL:
            raise BadRequest(f"{entity.name} has no property {key!r}; it has {', '.join(known_names(entity))}",
                             field=f"{label}.{key}")
        if prop is None or prop.name == "id":
            continue
        if prop.decode is None:
            raise BadRequest(f"{entity.name}.{key} is computed by the service and cannot be written",
                             field=f"{label}.{key}")
        if value is not None:
            row |= prop.decode(value, f"{label}.{key}")
        elif prop.column is not None and entity.table.c[prop.column].nullable:
            row[prop.column] = None
        else:
            raise BadRequest(f"{entity.name}.{key} cannot be null", field=f"{label}.{key}")
    if required:
        for prop in entity.props:
            if prop.required and body.get(prop.name) is None:
                raise BadRequest(f"a {entity.name} needs {prop.name}", field=f"{label}.{prop.name}")
    return row


class Writer:
    """Writes entity trees in one transaction; ``now`` stamps HistoricalLocations."""

    def __init__(self, conn: Connection, now: datetime) -> None:
        self.conn, self.now = conn, now

    # ── create (18-088 §10.2) ──

    def create(self, entity: EntityType, body: Any, label: str = "body", given: dict[str, Any] | None = None) -> int:
        """Insert ``body`` as a new ``entity`` (and whatever it carries inline); returns its id."""
        body = _object(body, label)
        if entity is OBSERVATION:
            raise BadRequest(f"{label}: Observations are not created inline; post them to "
                             "Datastreams(n)/Observations or CreateObservations so quality control sees them",
                             field=label)
        if "@iot.id" in body:
            raise BadRequest(f"{label}.@iot.id: ids are assigned by the service", field=f"{label}.@iot.id")
        row = {**decode_properties(entity, body, label, required=True), **(given or {})}
        later: list[tuple[Nav, Any]] = []
        for nav, value in self.navigations(entity, body):
            if isinstance(nav.link, ForeignKey):
                row[nav.link.column] = self.single_link(nav, value, f"{label}.{nav.name}")
            else:
                later.append((nav, value))
        self.require_parents(entity, row, label)
        new_id = CREATORS[entity.name](self.conn, row)
        for nav, value in later:
            self.attach(entity, new_id, nav, value, f"{label}.{nav.name}")
        return new_id

    def navigations(self, entity: EntityType, body: dict[str, Any]) -> list[tuple[Nav, Any]]:
        return [(nav, body[nav.name]) for nav in entity.navs if nav.name in body]

    def single_link(self, nav: Nav, value: Any, label: str) -> int:
        """The id a to-one navigation (or a HistoricalLocation's one Location) points at."""
        if nav.many:
            items = _list(value, label)
            if len(items) != 1:
                raise BadRequest(f"{label} must hold exactly one entity here", field=label)
            value, label = items[0], f"{label}.0"
        return self.create_or_link(target_of(nav), value, label)

    def create_or_link(self, entity: EntityType, value: Any, label: str) -> int:
        body = _object(value, label)
        entity_id = link_id(body, label)
        if entity_id is None:
            return self.create(entity, body, label)
        if entity_id > max_id(entity) or not sensing.row_exists(self.conn, entity.table, entity_id):
            raise BadRequest(f"{label}: there is no {entity.name} with id {entity_id}", field=f"{label}.@iot.id")
        return entity_id

    def require_parents(self, entity: EntityType, row: dict[str, Any], label: str) -> None:
        for nav in entity.navs:
            link = nav.link
            if isinstance(link, ForeignKey) and not entity.table.c[link.column].nullable and link.column not in row:
                raise BadRequest(f"a {entity.name} needs its {nav.name}: link one with "
                                 f'{{"@iot.id": n}} or give it inline', field=f"{label}.{nav.name}")

    def attach(self, entity: EntityType, entity_id: int, nav: Nav, value: Any, label: str) -> None:
        """Create or link the entities of a to-many navigation of a stored entity."""
        target = target_of(nav)
        items = _list(value, label)
        if isinstance(nav.link, Reverse):
            for i, item in enumerate(items):
                self.adopt(target, nav.link.column, entity_id, item, f"{label}.{i}")
            return
        ids = [self.create_or_link(target, item, f"{label}.{i}") for i, item in enumerate(items)]
        self.associate(entity, entity_id, nav, ids)

    def adopt(self, target: EntityType, column: str, parent_id: int, item: Any, label: str) -> None:
        """A child entity given inline is created under the parent; a linked one is moved to it."""
        body = _object(item, label)
        child_id = link_id(body, label)
        if child_id is None:
            self.create(target, body, label, given={column: parent_id})
        elif (child_id > max_id(target)
              or not sensing.update_row(self.conn, target.table, child_id, {column: parent_id})):
            raise BadRequest(f"{label}: there is no {target.name} with id {child_id}", field=f"{label}.@iot.id")

    def associate(self, entity: EntityType, entity_id: int, nav: Nav, ids: list[int]) -> None:
        """Things ↔ Locations: the Locations become the Things' current ones, with history."""
        assert isinstance(nav.link, Association)
        if entity is THING:
            sensing.locate_thing(self.conn, entity_id, ids, self.now)
        else:
            for thing_id in ids:
                sensing.locate_thing(self.conn, thing_id, [entity_id], self.now)

    # ── update (18-088 §10.3) ──

    def update(self, entity: EntityType, entity_id: int, body: Any, *, replace: bool = False) -> None:
        """PATCH (or PUT with ``replace``: properties not given return to their defaults)."""
        body = _object(body, "body")
        if entity is OBSERVATION:
            raise BadRequest("Observations are not changed in place: their quality flags were computed on "
                             "arrival; delete one and post the corrected reading", field="body")
        if "@iot.id" in body and body["@iot.id"] != entity_id:
            raise BadRequest("body.@iot.id differs from the id in the path", field="body.@iot.id")
        values = decode_properties(entity, body, "body", required=replace)
        if replace:
            values = {**self.defaults(entity, body), **values}
        for nav, value in self.navigations(entity, body):
            label = f"body.{nav.name}"
            if isinstance(nav.link, ForeignKey):
                values[nav.link.column] = self.single_link(nav, value, label)
            elif isinstance(nav.link, Association):
                self.attach(entity, entity_id, nav, value, label)
            else:
                raise BadRequest(f"{nav.name} cannot be changed from a {entity.name}; change each "
                                 f"{target_of(nav).name}'s {nav.inverse} instead", field=label)
        if not sensing.update_row(self.conn, entity.table, entity_id, values):
            raise BadRequest(f"there is no {entity.name} with id {entity_id}", field="path")

    def defaults(self, entity: EntityType, body: dict[str, Any]) -> dict[str, Any]:
        """What a PUT resets: each writable property missing from the body, to its column default."""
        values = {}
        for prop in entity.props:
            if prop.decode is None or prop.column is None or prop.name in body:
                continue
            default = entity.table.c[prop.column].default
            values[prop.column] = default.arg if default is not None else None
        return values



# ── JSON Patch (RFC 6902), which 18-088 §10.3 allows for updates ─────────────────────────


def apply_json_patch(document: dict[str, Any], operations: Any) -> dict[str, Any]:
    """``document`` after the ``add``/``remove``/``replace``/``test`` operations; others are refused."""
    if not isinstance(operations, list):
        raise BadRequest("a JSON Patch body is an array of operations", field="body")
    document = copy.deepcopy(document)
    for i, operation in enumerate(operations):
        label = f"body.{i}"
        if not isinstance(operation, dict) or not isinstance(operation.get("path"), str):
            raise BadRequest(f"{label} must be an operation with op and path", field=label)
        op, keys = operation.get("op"), _pointer(operation["path"], label)
        if op not in ("add", "remove", "replace", "test"):
            raise BadRequest(f"{label}: the JSON Patch operation {op!r} is not supported; use add, remove, "
                             "replace or test", field=f"{label}.op")
        if not keys:
            raise BadRequest(f"{label}: the whole entity cannot be replaced", field=f"{label}.path")
        parent = _walk(document, keys[:-1], label)
        if op == "test":
            if parent.get(keys[-1], ...) != operation.get("value"):
                raise BadRequest(f"{label}: test failed at {operation['path']}", field=label)
        elif op == "remove":
            if keys[-1] not in parent:
                raise BadRequest(f"{label}: nothing to remove at {operation['path']}", field=f"{label}.path")
            del parent[keys[-1]]
        else:
            if "value" not in operation:
                raise BadRequest(f"{label}: {op} needs a value", field=f"{label}.value")
            parent[keys[-1]] = operation["value"]
    return document


def _pointer(path: str, label: str) -> list[str]:
    if path and not path.startswith("/"):
        raise BadRequest(f"{label}.path must be a JSON Pointer such as /properties/owner", field=f"{label}.path")
    return [key.replace("~1", "/").replace("~0", "~") for key in path.split("/")[1:]]


def _walk(document: dict[str, Any], keys: list[str], label: str) -> dict[str, Any]:
    node: Any = document
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            raise BadRequest(f"{label}: the path leads through {key!r}, which is not an object", field=f"{label}.path")
    return node
