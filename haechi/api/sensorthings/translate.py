"""OData ``$filter`` and ``$orderby`` expressions as SQLAlchemy Core clauses. Pure: builds SQL, runs none.

OGC 18-088 §9.3.3.5 lists the operators and functions; every one is here except the geospatial
ones (``geo.*``, ``st_*``), which are refused by name. The same clause runs on SQLite and on
PostgreSQL: where the two differ (UTC date parts, string positions, JSON members) a small
construct below compiles to each engine's own SQL.

Paths cross navigation properties the way OData's ``any`` would: ``Datastreams/name eq 'x'``
on Things keeps the Things having *some* such Datastream (an ``EXISTS``); a to-one path whose
last step is the id, ``Datastream/id eq 1``, reads the foreign-key column directly so indexes
serve it. Types are checked before any SQL runs: comparing a number with a string is a 400.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Date,
    Float,
    FromClause,
    Integer,
    String,
    Time,
    TypeDecorator,
    and_,
    cast,
    exists,
    func,
    literal,
    not_,
    null,
    or_,
    select,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from haechi.core.clock import utcnow
from haechi.store.schema import UtcDateTime

from .entities import EntityType, ForeignKey, target_of
from .errors import BadRequest
from .odata import (
    ARITHMETIC,
    COMPARISONS,
    LOGICAL,
    Binary,
    Call,
    Expr,
    Literal,
    OrderKey,
    Path,
    Unary,
)

# ── engine-specific constructs ────────────────────────────────────────────────────────────


class JsonPath(TypeDecorator):
    """Member keys bound as each engine's JSON path: ``$."a"."b"`` (SQLite) or ``{a,b}`` (PostgreSQL).

    Keys come from the ``$filter`` lexer, which admits only letters, digits, ``_``, ``.`` and ``@``.
    """

    impl = String
    cache_ok = True

    def process_bind_param(self, keys: tuple[str, ...] | None, dialect) -> str | None:
        if keys is None:
            return None
        if dialect.name == "sqlite":
            return "$" + "".join(f'."{k}"' for k in keys)
        return "{" + ",".join(keys) + "}"


class _JsonMember(FunctionElement):
    """A member of a JSON column as one SQL type; other JSON types read as NULL."""

    inherit_cache = True
    sqlite_types: tuple[str, ...] = ()
    postgres_type: str = ""
    postgres_cast: str = ""


def _json_class(name: str, sqlite_types: tuple[str, ...], postgres_type: str, postgres_cast: str, sql_type):
    return type(name, (_JsonMember,), {
        "inherit_cache": True, "sqlite_types": sqlite_types, "postgres_type": postgres_type,
        "postgres_cast": postgres_cast, "type": sql_type})


JsonText = _json_class("JsonText", ("text",), "string", "", String())
JsonNumber = _json_class("JsonNumber", ("integer", "real"), "number", "DOUBLE PRECISION", Float())
JsonBoolean = _json_class("JsonBoolean", ("true", "false"), "boolean", "BOOLEAN", Boolean())
JsonAny = _json_class("JsonAny", (), "", "", String())


@compiles(_JsonMember, "sqlite")
def _json_member_sqlite(element, compiler, **kw) -> str:
    column, path = (compiler.process(c, **kw) for c in element.clauses)
    value = f"json_extract({column}, {path})"
    if not element.sqlite_types:
        return value
    wanted = ", ".join(f"'{t}'" for t in element.sqlite_types)
    return f"(CASE WHEN json_type({column}, {path}) IN ({wanted}) THEN {value} END)"


@compiles(_JsonMember)
def _json_member_postgres(element, compiler, **kw) -> str:
    column, path = (compiler.process(c, **kw) for c in element.clauses)
    text = f"({column} #>> CAST({path} AS TEXT[]))"
    if not element.postgres_type:
        return text
    value = f"CAST({text} AS {element.postgres_cast})" if element.postgres_cast else text
    return (f"(CASE WHEN json_typeof({column} #> CAST({path} AS TEXT[])) = '{element.postgres_type}' "
            f"THEN {value} END)")


class JsonSortKey(FunctionElement):
    """A JSON member as a sort key: numbers before strings on both engines."""

    inherit_cache = True


@compiles(JsonSortKey, "sqlite")
def _json_sort_sqlite(element, compiler, **kw) -> str:
    column, path = (compiler.process(c, **kw) for c in element.clauses)
    return f"json_extract({column}, {path})"


@compiles(JsonSortKey)
def _json_sort_postgres(element, compiler, **kw) -> str:
    column, path = (compiler.process(c, **kw) for c in element.clauses)
    return f"(CAST({column} AS JSONB) #> CAST({path} AS TEXT[]))"


class Position(FunctionElement):
    """1-based position of the second string in the first, 0 when absent."""

    type = Integer()
    inherit_cache = True


@compiles(Position, "sqlite")
def _position_sqlite(element, compiler, **kw) -> str:
    return f"instr({compiler.process(element.clauses, **kw)})"


@compiles(Position)
def _position_postgres(element, compiler, **kw) -> str:
    return f"strpos({compiler.process(element.clauses, **kw)})"


class _UtcPart(FunctionElement):
    """A calendar or clock field of a moment, read in UTC, as an integer."""

    type = Integer()
    inherit_cache = True
    field: str = ""
    strftime: str = ""


UTC_PARTS = {
    name: type(f"Utc{name.title()}", (_UtcPart,), {"inherit_cache": True, "field": name, "strftime": fmt})
    for name, fmt in (("year", "%Y"), ("month", "%m"), ("day", "%d"), ("hour", "%H"),
                      ("minute", "%M"), ("second", "%S"))
}


@compiles(_UtcPart, "sqlite")
def _utc_part_sqlite(element, compiler, **kw) -> str:
    return f"CAST(strftime('{element.strftime}', {compiler.process(element.clauses, **kw)}) AS INTEGER)"


@compiles(_UtcPart)
def _utc_part_postgres(element, compiler, **kw) -> str:
    moment = compiler.process(element.clauses, **kw)
    return f"CAST(FLOOR(EXTRACT({element.field.upper()} FROM timezone('UTC', {moment}))) AS INTEGER)"


class FractionalSeconds(FunctionElement):
    """The fraction of the second of a moment, 0 ≤ f < 1 (SQLite keeps milliseconds of it)."""

    type = Float()
    inherit_cache = True


@compiles(FractionalSeconds, "sqlite")
def _fraction_sqlite(element, compiler, **kw) -> str:
    moment = compiler.process(element.clauses, **kw)
    return f"(CAST(strftime('%f', {moment}) AS REAL) - CAST(strftime('%S', {moment}) AS INTEGER))"


@compiles(FractionalSeconds)
def _fraction_postgres(element, compiler, **kw) -> str:
    second = f"EXTRACT(SECOND FROM timezone('UTC', {compiler.process(element.clauses, **kw)}))"
    return f"CAST({second} - FLOOR({second}) AS DOUBLE PRECISION)"


class UtcDate(FunctionElement):
    type = Date()
    inherit_cache = True


@compiles(UtcDate, "sqlite")
def _utc_date_sqlite(element, compiler, **kw) -> str:
    return f"date({compiler.process(element.clauses, **kw)})"


@compiles(UtcDate)
def _utc_date_postgres(element, compiler, **kw) -> str:
    return f"CAST(timezone('UTC', {compiler.process(element.clauses, **kw)}) AS DATE)"


class UtcTime(FunctionElement):
    type = Time()
    inherit_cache = True


@compiles(UtcTime, "sqlite")
def _utc_time_sqlite(element, compiler, **kw) -> str:
    # SQLite keeps moments as 'YYYY-MM-DD HH:MM:SS.ffffff' and times as 'HH:MM:SS.ffffff'.
    return f"substr({compiler.process(element.clauses, **kw)}, 12)"


@compiles(UtcTime)
def _utc_time_postgres(element, compiler, **kw) -> str:
    return f"CAST(timezone('UTC', {compiler.process(element.clauses, **kw)}) AS TIME)"


class Modulo(FunctionElement):
    type = Float()
    inherit_cache = True


@compiles(Modulo, "sqlite")
def _modulo_sqlite(element, compiler, **kw) -> str:
    return f"mod({compiler.process(element.clauses, **kw)})"


@compiles(Modulo)
def _modulo_postgres(element, compiler, **kw) -> str:
    left, right = (compiler.process(c, **kw) for c in element.clauses)
    return f"CAST(mod(CAST({left} AS NUMERIC), CAST({right} AS NUMERIC)) AS DOUBLE PRECISION)"


# ── typed values ──────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class Typed:
    """A compiled value and its OData kind: number string boolean datetime date time null json.

    A JSON member (``properties/owner``) stays unresolved — ``member`` holds its column and
    keys — until its use says which type to read it as.
    """

    clause: ColumnElement | None
    kind: str
    constant: Any = None  # the literal's value, when it is one
    member: tuple[ColumnElement, tuple[str, ...]] | None = None

    def read_as(self, kind: str, option: str) -> Typed:
        if self.kind == kind:
            return self
        if self.kind == "json":
            column, keys = self.member
            member = {"string": JsonText, "number": JsonNumber, "boolean": JsonBoolean}.get(kind)
            if member is None:
                raise BadRequest(f"{option}: a JSON member cannot be read as {kind}", field=option)
            return Typed(member(column, literal(keys, JsonPath())), kind)
        if self.kind == "date" and kind == "datetime" and self.constant is not None:
            midnight = datetime.combine(self.constant, time(), UTC)
            return Typed(literal(midnight, UtcDateTime()), "datetime", midnight)
        raise BadRequest(f"{option}: expected a {kind} value, got a {self.kind}", field=option)

    @property
    def sql(self) -> ColumnElement:
        """The clause as it stands; an unresolved JSON member reads as its raw value."""
        if self.kind == "json":
            column, keys = self.member
            return JsonAny(column, literal(keys, JsonPath()))
        return self.clause

    def sort_key(self) -> ColumnElement:
        if self.kind == "json":
            column, keys = self.member
            return JsonSortKey(column, literal(keys, JsonPath()))
        return self.clause


def constant(value: Any, kind: str) -> Typed:
    types = {"string": String(), "boolean": Boolean(), "datetime": UtcDateTime(), "date": Date(), "time": Time()}
    if kind == "null":
        return Typed(null(), "null")
    if kind == "number":
        return Typed(literal(value, Integer() if isinstance(value, int) else Float()), "number", value)
    if kind == "geometry":
        raise BadRequest("$filter: geometry literals need the geospatial functions, which this service "
                         "does not support", field="$filter")
    return Typed(literal(value, types[kind]), kind, value)


# ── paths ─────────────────────────────────────────────────────────────────────────────────


class Scope:
    """The navigation hops of one predicate or sort key, each joined once under its own alias."""

    def __init__(self, entity: EntityType, table: FromClause, option: str, *, to_one_only: bool = False) -> None:
        self.entity, self.table, self.option, self.to_one_only = entity, table, option, to_one_only
        self.hops: dict[tuple[str, ...], tuple[FromClause, ColumnElement]] = {}

    def fail(self, message: str) -> BadRequest:
        return BadRequest(f"{self.option}: {message}", field=self.option)

    def path(self, path: Path) -> Typed:
        entity, table, walked = self.entity, self.table, ()
        for i, name in enumerate(path.segments):
            nav = entity.nav(name)
            rest = path.segments[i + 1:]
            if nav is None:
                return self.property(entity, table, name, rest, path)
            if not rest:
                raise self.fail(f"{path} ends at the navigation property {name}; name one of its "
                                f"properties, such as {name}/id")
            if isinstance(nav.link, ForeignKey) and rest in (("id",), ("@iot.id",)):
                return Typed(table.c[nav.link.column], "number")
            if nav.many and self.to_one_only:
                raise self.fail(f"{path} crosses the collection {name}; sort keys must lead to one value")
            walked += (name,)
            table = self.hop(walked, nav, table)
            entity = target_of(nav)
        raise self.fail(f"{path} names no property")  # unreachable: a path ends at a property

    def hop(self, walked: tuple[str, ...], nav, source: FromClause) -> FromClause:
        if walked not in self.hops:
            target = target_of(nav).table.alias()
            self.hops[walked] = (target, nav.link.condition(source, target))
        return self.hops[walked][0]

    def property(self, entity: EntityType, table: FromClause, name: str, rest: tuple[str, ...], path: Path) -> Typed:
        if name == "@iot.id":
            name = "id"
        prop = entity.prop(name)
        if prop is None:
            raise self.fail(f"{entity.name} has no property {name!r} (in {path})")
        if prop.kind == "json":
            return Typed(None, "json", member=(table.c[prop.column], rest))
        if prop.kind == "composite":
            if len(rest) != 1 or rest[0] not in prop.members:
                raise self.fail(f"{name} is compared by member: {', '.join(f'{name}/{m}' for m in prop.members)}")
            column, kind = prop.members[rest[0]]
            return Typed(table.c[column], kind)
        if prop.kind == "geometry":
            raise self.fail(f"{name} is a geometry; the geospatial functions are not supported by this service")
        if prop.kind == "derived":
            raise self.fail(f"{entity.name}/{name} is derived from the Observations; filter those instead")
        if rest:
            raise self.fail(f"{name} has no members ({path})")
        return Typed(table.c[prop.column], prop.kind)

    def exists(self, clause: ColumnElement) -> ColumnElement[bool]:
        """A predicate: with hops, true when some joined rows satisfy it (OData ``any``)."""
        if not self.hops:
            return clause
        joins = [condition for _, condition in self.hops.values()]
        return exists().where(*joins, clause).correlate(self.table)

    def scalar(self, clause: ColumnElement) -> ColumnElement:
        """A value: with (to-one) hops, the one value the path leads to."""
        if not self.hops:
            return clause
        joins = [condition for _, condition in self.hops.values()]
        return select(clause).where(*joins).correlate(self.table).scalar_subquery()


# ── expressions ───────────────────────────────────────────────────────────────────────────

_COMPARE: dict[str, Callable] = {
    "eq": operator.eq, "ne": operator.ne, "gt": operator.gt, "ge": operator.ge, "lt": operator.lt, "le": operator.le,
}


def _divide(a, b):
    return cast(a, Float) / b


_ARITHMETIC: dict[str, Callable] = {
    "add": operator.add, "sub": operator.sub, "mul": operator.mul, "div": _divide, "mod": Modulo,
}


def _ends_with(text, suffix):
    start = func.length(text) - func.length(suffix) + 1
    return and_(func.length(suffix) <= func.length(text), func.substr(text, start) == suffix)


def _substring(text, start, length=None):
    return func.substr(text, start + 1) if length is None else func.substr(text, start + 1, length)


S, N, B, D = "string", "number", "boolean", "datetime"

#: name → (argument kinds, result kind, builder). 18-088 §9.3.3.5.2 built-in query functions.
FUNCTIONS: dict[str, tuple[tuple[str, ...], str, Callable]] = {
    "substringof": ((S, S), B, lambda needle, text: Position(text, needle) > 0),
    "contains": ((S, S), B, lambda text, needle: Position(text, needle) > 0),
    "startswith": ((S, S), B, lambda text, prefix: Position(text, prefix) == 1),
    "endswith": ((S, S), B, _ends_with),
    "length": ((S,), N, func.length),
    "indexof": ((S, S), N, lambda text, needle: Position(text, needle) - 1),
    "substring": ((S, N), S, _substring),
    "tolower": ((S,), S, func.lower),
    "toupper": ((S,), S, func.upper),
    "trim": ((S,), S, func.trim),
    "concat": ((S, S), S, lambda a, b: a.concat(b)),
    **{name: ((D,), N, part) for name, part in UTC_PARTS.items()},
    "fractionalseconds": ((D,), N, FractionalSeconds),
    "totaloffsetminutes": ((D,), N, lambda moment: literal(0, Integer())),  # every moment is read in UTC
    "mindatetime": ((D,), D, lambda moment: moment),  # of an instant, the instant itself
    "maxdatetime": ((D,), D, lambda moment: moment),
    "date": ((D,), "date", UtcDate),
    "time": ((D,), "time", UtcTime),
    "round": ((N,), N, func.round),
    "floor": ((N,), N, func.floor),
    "ceiling": ((N,), N, func.ceil),
}
OPTIONAL_ARGUMENTS = {"substring": (N,)}


class Translator:
    """Compiles expressions about one entity type, read from ``table`` (the table or an alias)."""

    def __init__(self, entity: EntityType, table: FromClause | None = None, option: str = "$filter",
                 now: Callable[[], datetime] = utcnow) -> None:
        self.entity, self.table, self.option, self.now = (
            entity, table if table is not None else entity.table, option, now)

    def fail(self, message: str) -> BadRequest:
        return BadRequest(f"{self.option}: {message}", field=self.option)

    def predicate(self, expr: Expr) -> ColumnElement[bool]:
        """A ``$filter`` as a WHERE clause."""
        if isinstance(expr, Binary) and expr.op in LOGICAL:
            combine = and_ if expr.op == "and" else or_
            return combine(self.predicate(expr.left), self.predicate(expr.right))
        if isinstance(expr, Unary) and expr.op == "not":
            return not_(self.predicate(expr.operand))
        scope = Scope(self.entity, self.table, self.option)
        value = self.value(expr, scope)
        if value.kind == "json":
            value = value.read_as("boolean", self.option)
        if value.kind != "boolean":
            raise self.fail(f"the filter must be true or false, but {_describe(expr)} is a {value.kind}")
        return scope.exists(value.clause)

    def order(self, keys: tuple[OrderKey, ...]) -> list[ColumnElement]:
        """``$orderby`` keys as ORDER BY terms; nulls first going up, last going down (OData)."""
        terms = []
        for key in keys:
            scope = Scope(self.entity, self.table, self.option, to_one_only=True)
            term = scope.scalar(self.value(key.expression, scope).sort_key())
            terms.append(term.desc().nulls_last() if key.descending else term.asc().nulls_first())
        return terms

    def value(self, expr: Expr, scope: Scope) -> Typed:
        if isinstance(expr, Literal):
            return constant(expr.value, expr.kind)
        if isinstance(expr, Path):
            return scope.path(expr)
        if isinstance(expr, Call):
            return self.call(expr, scope)
        if isinstance(expr, Unary):
            return self.unary(expr, scope)
        if expr.op in COMPARISONS:
            return self.compare(expr.op, self.value(expr.left, scope), self.value(expr.right, scope))
        if expr.op in ARITHMETIC:
            left = self.value(expr.left, scope).read_as(N, self.option)
            right = self.value(expr.right, scope).read_as(N, self.option)
            return Typed(_ARITHMETIC[expr.op](left.clause, right.clause), N)
        left = self.value(expr.left, scope).read_as(B, self.option)
        right = self.value(expr.right, scope).read_as(B, self.option)
        return Typed((and_ if expr.op == "and" else or_)(left.clause, right.clause), B)

    def unary(self, expr: Unary, scope: Scope) -> Typed:
        if expr.op == "not":
            return Typed(not_(self.value(expr.operand, scope).read_as(B, self.option).clause), B)
        return Typed(-self.value(expr.operand, scope).read_as(N, self.option).clause, N)

    def compare(self, op: str, left: Typed, right: Typed) -> Typed:
        if "null" in (left.kind, right.kind):
            other = right if left.kind == "null" else left
            if op not in ("eq", "ne"):
                raise self.fail(f"null can only be compared with eq or ne, not {op}")
            return Typed(other.sql.is_(None) if op == "eq" else other.sql.is_not(None), B)
        if left.kind == "json" and right.kind == "json":
            left, right = left.read_as(S, self.option), right.read_as(S, self.option)
        elif left.kind in ("json", "date"):
            left = left.read_as(right.kind, self.option)
        elif right.kind in ("json", "date"):
            right = right.read_as(left.kind, self.option)
        if left.kind != right.kind:
            raise self.fail(f"cannot compare a {left.kind} with a {right.kind} ({op})")
        return Typed(_COMPARE[op](left.clause, right.clause), B)

    def call(self, expr: Call, scope: Scope) -> Typed:
        name = expr.name.lower()
        if name.startswith(("geo.", "st_")):
            raise self.fail(f"the geospatial function {expr.name} is not supported by this service")
        if name == "now" and not expr.args:
            moment = self.now()
            return Typed(literal(moment, UtcDateTime()), D, moment)
        if name not in FUNCTIONS:
            raise self.fail(f"unknown function {expr.name}; supported: {', '.join([*FUNCTIONS, 'now'])}")
        kinds, result, build = FUNCTIONS[name]
        allowed = (kinds, kinds + OPTIONAL_ARGUMENTS.get(name, ()))
        if len(expr.args) not in {len(k) for k in allowed}:
            raise self.fail(f"{name} takes {len(kinds)} argument(s), got {len(expr.args)}")
        kinds = allowed[1] if len(expr.args) > len(kinds) else kinds
        args = [self.value(arg, scope).read_as(kind, self.option).clause for arg, kind in zip(expr.args, kinds)]
        return Typed(build(*args), result)


def _describe(expr: Expr) -> str:
    if isinstance(expr, Path):
        return str(expr)
    if isinstance(expr, Literal):
        return repr(expr.value)
    if isinstance(expr, Call):
        return f"{expr.name}(…)"
    return f"the {expr.op} expression"

