"""Parsing observation payloads: JSON objects, streamed JSON arrays, NDJSON and CSV. Pure.

The documented payload (one observation)::

    {"datastream_id": 12, "phenomenon_time": "2020-08-06T14:20:00+09:00", "result": 10.8,
     "unit": "cm", "result_time": "…", "parameters": {…}}

``datastream_id`` may come from the MQTT topic instead; ``unit`` (UCUM or a common spelling)
defaults to the datastream's own; times need a UTC offset. Anything else is refused, naming the field.
"""

from __future__ import annotations

import csv
import math
from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import ijson
import orjson

from haechi.core.errors import InvalidInput
from haechi.model.reading import Reading, Rejected

FIELDS = frozenset({"datastream_id", "phenomenon_time", "result", "unit", "result_time", "parameters"})


def reading(obj: Any, datastream_id: int | None = None) -> Reading:
    """Validate one decoded JSON value as an observation; ``datastream_id`` comes from a topic."""
    if not isinstance(obj, dict):
        raise InvalidInput(f"an observation must be a JSON object, not {type(obj).__name__}")
    unknown = obj.keys() - FIELDS
    if unknown:
        name = min(unknown)
        raise InvalidInput(f"unknown field {name!r}; expected {', '.join(sorted(FIELDS))}", field=name)
    stream = obj.get("datastream_id", datastream_id)
    if datastream_id is not None and stream != datastream_id:
        raise InvalidInput(f"datastream_id {stream} disagrees with the topic's {datastream_id}", field="datastream_id")
    parameters = obj.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise InvalidInput("parameters must be an object", field="parameters")
    unit = obj.get("unit")
    if unit is not None and not isinstance(unit, str):
        raise InvalidInput("unit must be a string such as 'cm' or 'Cel'", field="unit")
    return Reading(
        datastream_id=_positive_int(stream, "datastream_id"),
        phenomenon_time=timestamp(obj.get("phenomenon_time"), "phenomenon_time"),
        result=number(obj.get("result"), "result"),
        unit=unit,
        result_time=timestamp(obj["result_time"], "result_time") if obj.get("result_time") is not None else None,
        parameters=parameters,
    )


MAX_ID = 2**31 - 1  # ids are 32-bit integers in the integrated DB


def _positive_int(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
        raise InvalidInput(f"{field} must be a positive integer up to {MAX_ID} (got {value!r})", field=field)
    return value


def number(value: Any, field: str) -> float:
    """A finite number; booleans, strings, NaN and infinities are refused."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{field} must be a number (got {value!r})", field=field)
    value = float(value)
    if not math.isfinite(value):
        raise InvalidInput(f"{field} must be finite (got {value})", field=field)
    return value


def timestamp(value: Any, field: str) -> datetime:
    """An ISO 8601 time with a UTC offset (a time without one is ambiguous, so refused)."""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be an ISO 8601 string such as 2020-08-06T14:20:00+09:00", field=field)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{field} {value!r} is not an ISO 8601 time", field=field) from None
    if moment.tzinfo is None:
        raise InvalidInput(f"{field} {value!r} has no UTC offset (add Z or +09:00)", field=field)
    try:
        moment.astimezone(UTC)  # e.g. 0001-01-01T00:00+01:00 has no UTC equivalent
    except OverflowError:
        raise InvalidInput(f"{field} {value!r} is outside the representable range", field=field) from None
    return moment


def readings(items: Iterable[Any], datastream_id: int | None = None) -> Iterator[Reading | Rejected]:
    """Each decoded item as a Reading, or as Rejected with its index and reason."""
    for index, item in enumerate(items):
        try:
            yield reading(item, datastream_id)
        except InvalidInput as exc:
            yield Rejected(index, exc.detail, exc.field, _raw(item))


def _raw(item: Any) -> str:
    try:
        return orjson.dumps(item, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    except TypeError:
        return repr(item)


# ── streamed bodies ──────────────────────────────────────────────────────────────────────


async def json_array_items(chunks: AsyncIterator[bytes]) -> AsyncIterator[list[Any]]:
    """Items of a top-level JSON array, a list per arriving chunk (never the whole body at once).

    Lists, not single items: one await per chunk instead of one per observation.
    """
    decoded = ijson.sendable_list()
    parser = ijson.items_coro(decoded, "item", use_float=True)
    try:
        async for chunk in chunks:
            if not chunk:  # an empty send means end of input to ijson; the stream may end with one
                continue
            parser.send(chunk)
            if decoded:
                yield list(decoded)
                del decoded[:]
        parser.close()
    except ijson.JSONError as exc:
        raise InvalidInput(f"the body is not a valid JSON array: {exc}", field="body") from None
    if decoded:
        yield list(decoded)


async def lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[list[bytes]]:
    """Complete lines of a byte stream, a list per arriving chunk."""
    rest = b""
    async for chunk in chunks:
        *complete, rest = (rest + chunk).split(b"\n")
        if complete:
            yield complete
    if rest:
        yield [rest]


def ndjson_item(line: bytes) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"line is not valid JSON: {exc}", field="body") from None


CSV_COLUMNS = ("datastream_id", "phenomenon_time", "result", "unit")


def csv_item(header: list[str], line: bytes) -> dict[str, Any]:
    """One CSV line as a payload object: numbers become numbers, empty cells are left out."""
    try:
        cells = next(csv.reader([line.decode("utf-8")]), [])
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InvalidInput(f"unreadable CSV line: {exc}", field="body") from None
    if len(cells) != len(header):
        raise InvalidInput(f"expected {len(header)} cells ({', '.join(header)}), got {len(cells)}", field="body")
    item: dict[str, Any] = {}
    for name, cell in zip(header, cells, strict=True):
        if cell == "":
            continue
        item[name] = _csv_value(name, cell)
    return item


def _csv_value(name: str, cell: str) -> Any:
    if name == "datastream_id":
        return int(cell) if cell.isdigit() else cell
    if name == "result":
        try:
            return float(cell)
        except ValueError:
            return cell
    return cell


def csv_header(line: bytes) -> list[str]:
    header = [h.strip() for h in next(csv.reader([line.decode("utf-8-sig")]))]
    unknown = [h for h in header if h not in FIELDS or h == "parameters"]
    missing = {"phenomenon_time", "result"} - set(header)
    if unknown or missing:
        raise InvalidInput(
            f"CSV header must name {', '.join(CSV_COLUMNS)} (unit optional); "
            f"unknown {unknown or 'none'}, missing {sorted(missing) or 'none'}", field="header")
    return header
