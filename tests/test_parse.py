"""Observation payloads: every malformed input is refused with the field named; never a crash."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from haechi.core.errors import InvalidInput
from haechi.ingest import parse

GOOD = {"datastream_id": 5, "phenomenon_time": "2020-08-06T14:20:00+09:00", "result": 1080, "unit": "cm"}


def test_a_good_observation():
    r = parse.reading(GOOD)
    assert (r.datastream_id, r.result, r.unit) == (5, 1080.0, "cm")
    assert r.phenomenon_time.astimezone(UTC) == datetime(2020, 8, 6, 5, 20, tzinfo=UTC)


@pytest.mark.parametrize(("change", "field"), [
    ({"result": "10.8"}, "result"),
    ({"result": True}, "result"),
    ({"result": float("nan")}, "result"),
    ({"result": float("inf")}, "result"),
    ({"result": None}, "result"),
    ({"datastream_id": 0}, "datastream_id"),
    ({"datastream_id": "five"}, "datastream_id"),
    ({"datastream_id": 2**63}, "datastream_id"),
    ({"phenomenon_time": "2020-08-06T14:20:00"}, "phenomenon_time"),  # no offset: ambiguous
    ({"phenomenon_time": "yesterday"}, "phenomenon_time"),
    ({"phenomenon_time": 1596691200}, "phenomenon_time"),
    ({"phenomenon_time": "0001-01-01T00:00:00+01:00"}, "phenomenon_time"),  # before year 1 in UTC
    ({"unit": 7}, "unit"),
    ({"parameters": [1]}, "parameters"),
    ({"colour": "red"}, "colour"),
])
def test_each_malformed_field_is_named(change, field):
    with pytest.raises(InvalidInput) as caught:
        parse.reading(GOOD | change)
    assert caught.value.field == field


def test_topic_datastream_must_agree_with_the_payload():
    assert parse.reading({k: v for k, v in GOOD.items() if k != "datastream_id"}, 9).datastream_id == 9
    with pytest.raises(InvalidInput, match="disagrees"):
        parse.reading(GOOD, 9)


def test_readings_keep_the_index_and_raw_text_of_rejects():
    out = list(parse.readings([GOOD, {"result": 1}, 3]))
    assert isinstance(out[0], parse.Reading)
    assert [(r.index, r.field) for r in out[1:]] == [(1, "datastream_id"), (2, None)]
    assert out[2].raw == "3"


async def _chunks(data: bytes, size: int):
    for i in range(0, len(data), size):
        yield data[i : i + size]


def _collect(aiter):
    async def go():
        return [x async for x in aiter]
    return asyncio.run(go())


def test_json_array_is_decoded_across_arbitrary_chunk_boundaries():
    body = json.dumps([GOOD] * 50).encode()
    assert [i for items in _collect(parse.json_array_items(_chunks(body, 7))) for i in items] == [GOOD] * 50


def test_broken_json_array_is_refused():
    with pytest.raises(InvalidInput, match="not a valid JSON array"):
        _collect(parse.json_array_items(_chunks(b'[{"result": 1}, {"resu', 5)))


def test_lines_split_across_chunks():
    assert [x for lines in _collect(parse.lines(_chunks(b"a,b\n1,2\n3,4", 3))) for x in lines] == [
        b"a,b", b"1,2", b"3,4"]


def test_csv_header_and_rows():
    header = parse.csv_header(b"datastream_id,phenomenon_time,result,unit")
    item = parse.csv_item(header, b"5,2020-08-06T14:20:00+09:00,1080,cm")
    assert parse.reading(item).result == 1080.0
    with pytest.raises(InvalidInput, match="expected 4 cells"):
        parse.csv_item(header, b"5,2020-08-06T14:20:00+09:00")
    with pytest.raises(InvalidInput, match="unknown"):
        parse.csv_header(b"station,time,value")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=8,
)


@given(st.dictionaries(st.sampled_from(sorted(parse.FIELDS) + ["extra"]), json_values, max_size=6))
def test_any_payload_is_either_a_reading_or_a_named_refusal(payload):
    try:
        r = parse.reading(payload)
    except InvalidInput as exc:
        assert exc.detail
    else:
        assert r.datastream_id > 0 and r.phenomenon_time.tzinfo is not None


@given(st.binary(max_size=200))
def test_any_csv_line_is_either_an_item_or_a_refusal(line):
    header = list(parse.CSV_COLUMNS)
    try:
        parse.csv_item(header, line)
    except (InvalidInput, UnicodeDecodeError, ValueError):
        pass
