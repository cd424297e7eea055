"""Reading SensorThings resources: collections with paging, entities, properties, ``$ref``, ``$expand``.

OGC 18-088 §9.2 (resource paths) and §9.3 (requesting data). Each collection is one query: the
``$filter`` and ``$orderby`` translated to SQL, ``$skip`` and ``$top`` as OFFSET and LIMIT — one
row more than asked, to know whether an ``@iot.nextLink`` is due (server-driven paging,
§9.3.3.6). ``$expand`` costs one query per navigation and level, whatever the number of parents:
a window function ranks each parent's related rows, so nested ``$top``/``$skip`` hold per parent.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from sqlalchemy import ColumnElement, Connection, exists, func, select

from haechi.core.errors import NotFound

from .entities import OBSERVATION, EntityType, Nav, Row, check_select, encode, self_link, target_of
from .errors import BadRequest
from .odata import QueryOptions
from .resources import Resource
from .translate import Translator

#: The Observation properties a dataArray carries when ``$select`` names none (18-088 §13.2).
DATA_ARRAY_COMPONENTS = ("id", "phenomenonTime", "resultTime", "result", "resultQuality", "parameters")


#: Characters left readable in paging links (``$top``, ``Observations($top=3)``); the rest is %-encoded.
QUERY_SAFE = "$(),;'/:@"


@dataclass(frozen=True, slots=True)
class Links:
    """Where links point: the service root and this request's own URL (without its query)."""

    base: str
    here: str

    def page(self, url: str, params: Sequence[tuple[str, str]]) -> str:
        return f"{url}?{urlencode(params, quote_via=quote, safe=QUERY_SAFE)}"



@dataclass(frozen=True, slots=True)
class RawValue:
    """A property's ``$value``: the bare value, not wrapped in JSON (18-088 §9.2.4)."""

    value: Any


def read(conn: Connection, links: Links, resource: Resource, options: QueryOptions) -> dict[str, Any] | RawValue:
    """The JSON answer for ``resource`` (or a bare ``$value``); 404 when a step leads nowhere."""
    _check_steps(conn, resource)
    reader = _Reader(conn, links)
    if resource.prop is not None:
        _only(options, (), "a property")
        return reader.property(resource)
    if resource.single:
        _only(options, ("$select", "$expand"), "one entity")
        return reader.entity(resource, options)
    return reader.collection(resource.entity, resource.where, options, links.here, ref=resource.ref)


def _check_steps(conn: Connection, resource: Resource) -> None:
    for walked, entity, where in resource.steps:
        if not conn.execute(select(exists().where(where))).scalar():
            raise NotFound(f"there is no {entity.name} at {walked}")


def _only(options: QueryOptions, allowed: tuple[str, ...], what: str) -> None:
    for name, _ in options.raw:
        if name not in allowed:
            raise BadRequest(f"{name} does not apply to {what}; it applies to collections", field=name)


class _Reader:
    def __init__(self, conn: Connection, links: Links) -> None:
        self.conn, self.links = conn, links

    # ── the three shapes of an answer ──

    def property(self, resource: Resource) -> dict[str, Any] | RawValue:
        row = self.conn.execute(select(*resource.entity.columns()).where(resource.where)).mappings().first()
        value = resource.entity.prop(resource.prop).encode(row)
        return RawValue(value) if resource.value else {resource.prop: value}

    def entity(self, resource: Resource, options: QueryOptions) -> dict[str, Any]:
        entity = resource.entity
        if resource.ref:
            row = self.conn.execute(select(entity.table.c.id).where(resource.where)).first()
            return {"@iot.selfLink": self_link(self.links.base, entity, row.id)}
        row = self.conn.execute(select(*entity.columns()).where(resource.where)).mappings().first()
        [out] = self.encode_all(entity, [row], options)
        return out

    def collection(self, entity: EntityType, where: ColumnElement[bool], options: QueryOptions, url: str,
                   *, ref: bool = False) -> dict[str, Any]:
        if options.filter is not None:
            where = where & Translator(entity).predicate(options.filter)
        order = [*Translator(entity, option="$orderby").order(options.orderby), entity.table.c.id.asc()]
        top = options.page_size
        query = select(*entity.columns()).where(where).order_by(*order).offset(options.skip).limit(top + 1)
        rows = self.conn.execute(query).mappings().all()
        answer: dict[str, Any] = {}
        if options.count:
            answer["@iot.count"] = self.conn.execute(
                select(func.count()).select_from(entity.table).where(where)).scalar()
        if len(rows) > top > 0:
            answer["@iot.nextLink"] = self.links.page(url, options.repeated(skip=options.skip + top))
        rows = rows[:top]
        if ref:
            answer["value"] = [{"@iot.selfLink": self_link(self.links.base, entity, r["id"])} for r in rows]
        elif options.result_format == "dataArray":
            answer["value"] = self.data_array(entity, rows, options)
        else:
            answer["value"] = self.encode_all(entity, rows, options)
        return answer

    # ── entities and what they expand ──

    def encode_all(self, entity: EntityType, rows: Sequence[Row], options: QueryOptions, label: str = "") -> list[dict]:
        check_select(entity, options.select, f"{label}$select")
        outs = [encode(entity, row, self.links.base, options.select) for row in rows]
        for item in options.expand:
            nav = entity.nav(item.name)
            if nav is None:
                raise BadRequest(f"{label}$expand: {entity.name} has no navigation property {item.name!r}; "
                                 f"it has {', '.join(n.name for n in entity.navs)}", field=f"{label}$expand")
            self.expand(entity, nav, rows, outs, item.options, f"{label}$expand({nav.name}).")
        return outs

    def expand(self, entity: EntityType, nav: Nav, rows: Sequence[Row], outs: list[dict],
               options: QueryOptions, label: str) -> None:
        ids = list(dict.fromkeys(row["id"] for row in rows))
        related, counts, more = self.related(entity, nav, ids, options, label)
        flat = [r for group in related.values() for r in group]
        encoded = iter(self.encode_all(target_of(nav), flat, options, label))
        by_parent = {parent: [next(encoded) for _ in group] for parent, group in related.items()}
        for row, out in zip(rows, outs):
            mine = by_parent.get(row["id"], [])
            if not nav.many:
                if mine:
                    out[nav.name] = mine[0]
                continue
            out[nav.name] = mine
            if options.count:
                out[f"{nav.name}@iot.count"] = counts.get(row["id"], 0)
            if more.get(row["id"]):
                url = f"{self_link(self.links.base, entity, row['id'])}/{nav.name}"
                out[f"{nav.name}@iot.nextLink"] = self.links.page(
                    url, options.repeated(skip=options.skip + options.page_size))

    def related(self, entity: EntityType, nav: Nav, ids: list[int], options: QueryOptions, label: str):
        """Rows related to each parent id (one query), their counts, and whether more are left."""
        target = target_of(nav)
        joined, parent = nav.link.keyed(entity.table, target.table)
        where = parent.in_(ids)
        if options.filter is not None:
            where = where & Translator(target, option=f"{label}$filter").predicate(options.filter)
        if not ids:  # nothing to expand; the options were still checked
            Translator(target, option=f"{label}$orderby").order(options.orderby)
            return {}, {}, {}
        columns = [*target.columns(), parent.label("_parent")]
        if not nav.many:
            found = self.conn.execute(select(*columns).select_from(joined).where(where)).mappings().all()
            return _grouped(found), {}, {}
        order = [*Translator(target, option=f"{label}$orderby").order(options.orderby), target.table.c.id.asc()]
        rank = func.row_number().over(partition_by=parent, order_by=order).label("_rank")
        ranked = select(*columns, rank).select_from(joined).where(where).subquery()
        top, skip = options.page_size, options.skip
        page = select(ranked).where(ranked.c["_rank"] > skip, ranked.c["_rank"] <= skip + top + 1)
        groups = _grouped(self.conn.execute(page.order_by(ranked.c["_parent"], ranked.c["_rank"])).mappings().all())
        more = {p: len(g) > top for p, g in groups.items()}
        groups = {p: g[:top] for p, g in groups.items()}
        counts = {}
        if options.count:
            counting = select(parent, func.count()).select_from(joined).where(where).group_by(parent)
            counts = dict(self.conn.execute(counting).all())
        return groups, counts, more

    # ── 18-088 §13.2: Observations as a dataArray ──

    def data_array(self, entity: EntityType, rows: Sequence[Row], options: QueryOptions) -> list[dict[str, Any]]:
        if entity is not OBSERVATION:
            raise BadRequest("$resultFormat=dataArray applies to Observations only", field="$resultFormat")
        if options.expand:
            raise BadRequest("$resultFormat=dataArray cannot be combined with $expand", field="$resultFormat")
        components = options.select or DATA_ARRAY_COMPONENTS
        props = [OBSERVATION.prop(name) for name in components]
        if any(p is None for p in props):
            raise BadRequest(f"$select: a dataArray holds Observation properties: {', '.join(DATA_ARRAY_COMPONENTS)}",
                             field="$select")
        streams: dict[int, list[list[Any]]] = defaultdict(list)
        for row in rows:
            streams[row["datastream_id"]].append([p.encode(row) for p in props])
        return [{
            "Datastream@iot.navigationLink": f"{self.links.base}/Datastreams({stream})",
            "components": list(components), "dataArray@iot.count": len(values), "dataArray": values,
        } for stream, values in streams.items()]


def _grouped(rows: Sequence[Row]) -> dict[int, list[Row]]:
    groups: dict[int, list[Row]] = defaultdict(list)
    for row in rows:
        groups[row["_parent"]].append(row)
    return groups
