"""Resource paths (OGC 18-088 §9.2): ``Things(1)/Datastreams``, ``Datastreams(1)/Thing/name/$value``. Pure.

A path is resolved to the rows it addresses — a WHERE clause over one entity type's table — and
to what is shown of them: the collection, one entity, one property, its ``$value``, or ``$ref``
links. Every single entity passed on the way is remembered with its own clause, so a read can
answer 404 naming the first step that leads nowhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from sqlalchemy import ColumnElement, select, true

from haechi.core.errors import NotFound

from .entities import ENTITY_SETS, EntityType, Nav, Parents, max_id, target_of
from .errors import BadRequest

_SEGMENT = re.compile(r"(?P<name>[A-Za-z]+)(?:\((?P<key>[^()]*)\))?")


@dataclass(frozen=True, slots=True)
class Resource:
    """What a path addresses."""

    entity: EntityType
    where: ColumnElement[bool]
    single: bool
    #: The id, when the rows are exactly the entity with that id (``Things(1)``).
    id: int | None = None
    prop: str | None = None
    value: bool = False  # …/property/$value
    ref: bool = False  # …/$ref
    #: Each single entity passed on the way: (path up to it, its type, its clause).
    steps: tuple[tuple[str, EntityType, ColumnElement[bool]], ...] = ()
    #: The entity (by id) and navigation property a collection was reached through: a POST here
    #: links the new entity to that parent (``Datastreams(1)/Observations``).
    parent: tuple[EntityType, int, Nav] | None = None

    @property
    def is_collection(self) -> bool:
        return not self.single and self.prop is None


def parse_key(text: str, path: str, entity: EntityType) -> int:
    """An entity id: a positive integer (ids here are integers; ``('1')`` is read as 1)."""
    key = text.strip().strip("'")
    if not key.isdigit() or not 0 < int(key) <= max_id(entity):
        raise NotFound(f"there is no {entity.name} with id {text} (in {path})")
    return int(key)


def resolve(path: str) -> Resource:
    """The resource ``path`` (relative to the service root) addresses; 404 for unknown names."""
    segments = [s for s in path.strip("/").split("/") if s]
    if not segments:
        raise NotFound("empty resource path")
    match = _SEGMENT.fullmatch(segments[0])
    if match is None or match["name"] not in ENTITY_SETS:
        raise NotFound(f"{segments[0]!r} is not an entity set; this service has {', '.join(ENTITY_SETS)}")
    entity = ENTITY_SETS[match["name"]]
    resource = Resource(entity, true(), False)
    if match["key"] is not None:
        resource = _by_id(resource, parse_key(match["key"], path, entity), segments[0], exact=True)
    for i, segment in enumerate(segments[1:], start=1):
        resource = _step(resource, segment, "/".join(segments[: i + 1]), last=i == len(segments) - 1)
    return resource


def _by_id(resource: Resource, key: int, walked: str, *, exact: bool) -> Resource:
    where = resource.where & (resource.entity.table.c.id == key)
    return replace(resource, where=where, single=True, id=key if exact else None,
                   steps=(*resource.steps, (walked, resource.entity, where)))


def _step(resource: Resource, segment: str, walked: str, *, last: bool) -> Resource:
    if resource.value or resource.ref:
        raise NotFound(f"nothing follows $value or $ref (in {walked})")
    if resource.prop is not None:
        if segment == "$value" and last:
            return replace(resource, value=True)
        raise NotFound(f"only $value may follow a property (in {walked})")
    if segment == "$ref":
        if not last:
            raise NotFound(f"nothing follows $ref (in {walked})")
        return replace(resource, ref=True)
    match = _SEGMENT.fullmatch(segment)
    if match is None:
        raise NotFound(f"cannot read the path segment {segment!r}")
    nav = resource.entity.nav(match["name"])
    if nav is None and resource.entity.prop(match["name"]) is not None and match["key"] is None:
        return _property(resource, match["name"])
    if nav is None:
        raise NotFound(f"{resource.entity.name} has no property or navigation {match['name']!r}")
    if not resource.single:
        raise BadRequest(f"{nav.name} must follow one entity, e.g. {resource.entity.plural}(1)/{nav.name}",
                         field="path")
    return _navigate(resource, nav, match["key"], walked)


def _property(resource: Resource, name: str) -> Resource:
    if not resource.single:
        raise BadRequest(f"{name} must follow one entity, e.g. {resource.entity.plural}(1)/{name}", field="path")
    return replace(resource, prop=name)


def _navigate(resource: Resource, nav: Nav, key_text: str | None, walked: str) -> Resource:
    target = target_of(nav)
    parents: Parents = resource.id if resource.id is not None else select(resource.entity.table.c.id).where(
        resource.where)
    where = nav.link.restrict(resource.entity.table, target.table, parents)
    parent = (resource.entity, resource.id, nav) if resource.id is not None else None
    moved = Resource(target, where, not nav.many, steps=resource.steps, parent=parent)
    if not nav.many:
        if key_text is not None:
            raise NotFound(f"{nav.name} is one entity and takes no id (in {walked})")
        return replace(moved, steps=(*moved.steps, (walked, target, where)))
    if key_text is None:
        return moved
    return _by_id(moved, parse_key(key_text, walked, target), walked, exact=False)
