"""The OData query parser and its SQL translation, without a database (pure functions)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from haechi.api.sensorthings import entities
from haechi.api.sensorthings.errors import BadRequest
from haechi.api.sensorthings.odata import (
    DEFAULT_TOP,
    MAX_TOP,
    Binary,
    Call,
    Literal,
    Path,
    Unary,
    parse_expand,
    parse_filter,
    parse_options,
    parse_orderby,
    parse_select,
)
from haechi.api.sensorthings.resources import resolve
from haechi.api.sensorthings.translate import Translator

# ── parsing $filter ───────────────────────────────────────────────────────────────────────


def test_operators_bind_as_odata_says():
    tree = parse_filter("a eq 1 or b eq 2 and not c add 2 mul 3 gt 4")
    assert tree == Binary("or", Binary("eq", Path(("a",)), Literal(1, "number")), Binary(
        "and", Binary("eq", Path(("b",)), Literal(2, "number")),
        Unary("not", Binary("gt", Binary("add", Path(("c",)), Binary("mul", Literal(2, "number"),
                                                                         Literal(3, "number"))),
                            Literal(4, "number")))))


def test_parentheses_group_and_arithmetic_is_left_associative():
    assert parse_filter("(a or b) and c") == Binary("and", Binary("or", Path(("a",)), Path(("b",))), Path(("c",)))
    assert parse_filter("a sub 1 sub 2") == Binary(
        "sub", Binary("sub", Path(("a",)), Literal(1, "number")), Literal(2, "number"))


@pytest.mark.parametrize(("text", "value", "kind"), [
    ("'it''s'", "it's", "string"),
    ("''", "", "string"),
    ("'수위'", "수위", "string"),
    ("42", 42, "number"),
    ("-1.5e3", -1500.0, "number"),
    ("true", True, "boolean"),
    ("null", None, "null"),
    ("2020-08-06T05:00:00Z", datetime(2020, 8, 6, 5, tzinfo=UTC), "datetime"),
    ("2020-08-06T14:00:00.5+09:00", datetime(2020, 8, 6, 14, 0, 0, 500000, timezone(timedelta(hours=9))), "datetime"),
    ("2020-08-06T14:00:00 09:00", datetime(2020, 8, 6, 14, tzinfo=timezone(timedelta(hours=9))), "datetime"),
    ("2020-08-06", date(2020, 8, 6), "date"),
    ("05:15:00", time(5, 15), "time"),
])
def test_literals(text, value, kind):
    assert parse_filter(f"x eq {text}").right == Literal(value, kind)


def test_paths_and_function_calls():
    assert parse_filter("Datastream/Thing/name eq 'x'").left == Path(("Datastream", "Thing", "name"))
    assert parse_filter("substring(name, 1, 2) eq 'a'").left == Call(
        "substring", (Path(("name",)), Literal(1, "number"), Literal(2, "number")))
    assert parse_filter("now() gt phenomenonTime").left == Call("now", ())


@pytest.mark.parametrize("text", [
    "", "name eq", "eq 1", "(name eq 'x'", "name eq 'x')", "name eq 'open", "name # 1", "name eq 1 2",
    "f(a,", "Thing/ eq 1", "phenomenonTime gt 2020-08-06T05:00:00", "phenomenonTime gt 0001-01-01T00:00:00+09:00",
])
def test_malformed_filters_are_refused_naming_the_option(text):
    with pytest.raises(BadRequest) as caught:
        parse_filter(text)
    assert caught.value.field == "$filter" and caught.value.status == 400


# ── the other options ─────────────────────────────────────────────────────────────────────


def test_orderby_keys_with_directions():
    keys = parse_orderby("phenomenonTime desc, length(name), id asc")
    assert [(k.expression, k.descending) for k in keys] == [
        (Path(("phenomenonTime",)), True), (Call("length", (Path(("name",)),)), False), (Path(("id",)), False)]


def test_select_names_and_the_id_alias():
    assert parse_select("id, name,@iot.id,Datastreams") == ("id", "name", "Datastreams")
    with pytest.raises(BadRequest):
        parse_select("name desc")


def test_expand_with_nested_options_and_paths():
    [things] = parse_expand("Datastreams($select=name;$expand=Observations($top=3;$orderby=phenomenonTime desc)),"
                            "Datastreams/Sensor")
    assert things.name == "Datastreams" and things.options.select == ("name",)
    observations, sensor = things.options.expand
    assert observations.options.top == 3 and observations.options.orderby[0].descending
    assert sensor.name == "Sensor"
    assert dict(things.options.raw)["$expand"] == "Observations($top=3;$orderby=phenomenonTime desc),Sensor"


def test_expand_keeps_quoted_separators_inside_filters():
    [expand] = parse_expand("Observations($filter=parameters/note eq 'a;b,(c)';$top=1)")
    assert expand.options.filter.right == Literal("a;b,(c)", "string") and expand.options.top == 1


@pytest.mark.parametrize(("pairs", "field"), [
    ([("$top", "1"), ("$top", "2")], "$top"),
    ([("$frobnicate", "1")], "$frobnicate"),
    ([("$count", "1")], "$count"),
    ([("$skip", "-3")], "$skip"),
    ([("$expand", "Datastreams($resultFormat=dataArray)")], "$expand(Datastreams).$resultFormat"),
    ([("$resultFormat", "csv")], "$resultFormat"),
])
def test_options_refused_by_name(pairs, field):
    with pytest.raises(BadRequest) as caught:
        parse_options(pairs)
    assert caught.value.field == field


def test_page_size_defaults_caps_and_next_pages_repeat_the_options():
    assert parse_options([]).page_size == DEFAULT_TOP
    assert parse_options([("$top", "1000000")]).page_size == MAX_TOP
    options = parse_options([("$filter", "a eq 1"), ("$top", "5"), ("$skip", "5"), ("mine", "kept out")])
    assert options.repeated(skip=10) == [("$filter", "a eq 1"), ("$top", "5"), ("$skip", "10")]


# ── translating to SQL, on both engines ───────────────────────────────────────────────────


def sql(entity, text: str, dialect) -> str:
    clause = Translator(entity).predicate(parse_filter(text))
    query = select(entity.table.c.id).where(clause)
    return str(query.compile(dialect=dialect, compile_kwargs={}))


BOTH = pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.dialect()], ids=["sqlite", "postgres"])


@BOTH
def test_a_to_one_id_path_reads_the_foreign_key(dialect):
    text = sql(entities.OBSERVATION, "Datastream/id eq 1", dialect)
    assert "observations.datastream_id =" in text and "EXISTS" not in text


@BOTH
def test_paths_through_collections_are_exists_subqueries(dialect):
    text = sql(entities.THING, "Datastreams/ObservedProperty/name eq 'x' and Locations/name eq 'y'", dialect)
    assert text.count("EXISTS") == 2 and "thing_locations AS" in text


def test_json_members_and_utc_parts_compile_for_each_engine():
    lite = sql(entities.THING, "properties/grade gt 1 and year(now()) eq 2020", sqlite.dialect())
    assert "json_type(things.properties" in lite and "strftime('%Y'" in lite
    pg = sql(entities.THING, "properties/grade gt 1 and year(now()) eq 2020", postgresql.dialect())
    assert "json_typeof(things.properties #>" in pg and "timezone('UTC'" in pg


def test_orderby_through_a_to_one_path_is_a_scalar_subquery():
    terms = Translator(entities.OBSERVATION, option="$orderby").order(parse_orderby("Datastream/name desc"))
    assert "SELECT datastreams_1.name" in str(terms[0].compile(dialect=sqlite.dialect()))


@pytest.mark.parametrize(("entity", "text", "message"), [
    (entities.THING, "name eq 1", "cannot compare"),
    (entities.THING, "length(name)", "must be true or false"),
    (entities.THING, "name gt null", "null"),
    (entities.THING, "nosuch eq 1", "no property"),
    (entities.THING, "Datastreams eq 1", "navigation property"),
    (entities.THING, "properties/a/b eq geography'POINT(1 2)'", "geospatial"),
    (entities.LOCATION, "geo.distance(location, geography'POINT(1 2)') lt 5", "geospatial"),
    (entities.LOCATION, "location eq 1", "geometry"),
    (entities.DATASTREAM, "phenomenonTime gt 2020-01-01T00:00:00Z", "derived"),
    (entities.DATASTREAM, "unitOfMeasurement eq 'm'", "unitOfMeasurement/"),
    (entities.THING, "frobnicate(name)", "unknown function"),
    (entities.THING, "substring(name)", "argument"),
    (entities.THING, "year(name) eq 1", "expected a datetime"),
])
def test_type_and_name_errors_are_found_before_any_sql_runs(entity, text, message):
    with pytest.raises(BadRequest) as caught:
        Translator(entity).predicate(parse_filter(text))
    assert message in caught.value.detail and caught.value.field == "$filter"


def test_sort_keys_must_not_cross_collections():
    with pytest.raises(BadRequest, match="sort keys"):
        Translator(entities.THING, option="$orderby").order(parse_orderby("Datastreams/name"))


# ── resource paths ────────────────────────────────────────────────────────────────────────


def test_resource_paths_resolve_to_entities_properties_and_links():
    assert resolve("Things").is_collection
    one = resolve("Things(1)")
    assert one.single and one.id == 1
    navigated = resolve("Datastreams(1)/Observations")
    assert navigated.entity is entities.OBSERVATION and navigated.parent[1] == 1
    value = resolve("Datastreams(1)/Thing/name/$value")
    assert value.entity is entities.THING and value.prop == "name" and value.value
    assert resolve("Things(1)/Datastreams/$ref").ref
    assert [step[0] for step in resolve("Things(1)/Datastreams(2)/Sensor").steps] == [
        "Things(1)", "Things(1)/Datastreams(2)", "Things(1)/Datastreams(2)/Sensor"]
