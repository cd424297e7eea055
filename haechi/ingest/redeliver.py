"""Redelivering dead letters (``haechi deadletter replay``): an operator fixes what was refused and
sends it through the pipeline again.

A letter's payload is what arrived — our observation JSON (one object or an array), an MQTT
message (its topic names the datastream), or a SensorThings Observation. A letter is marked
replayed only when every reading in it is stored; otherwise it stays pending with the new reason,
and no second dead letter is made.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from haechi.core.errors import InvalidInput
from haechi.store import deadletters

from . import parse
from .mqtt import datastream_of
from .pipeline import Pipeline


@dataclass
class Outcome:
    letter_id: int
    replayed: bool
    detail: str


def readings_of(payload: str, source: str) -> list[parse.Reading | parse.Rejected]:
    """The readings a dead letter's payload holds, in whichever of our formats it came."""
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise InvalidInput("the payload is not JSON; give a corrected one with --payload") from None
    topic_stream = datastream_of(source.removeprefix("mqtt:")) if source.startswith("mqtt:") else None
    items = data if isinstance(data, list) else [data]
    return list(parse.readings([_house_format(i) for i in items], topic_stream))


def _house_format(item: Any) -> Any:
    """A SensorThings Observation becomes our payload; anything else passes unchanged."""
    if isinstance(item, dict) and ("phenomenonTime" in item or "Datastream" in item):
        stream = item.get("Datastream") or {}
        return {k: v for k, v in {
            "datastream_id": stream.get("@iot.id") if isinstance(stream, dict) else None,
            "phenomenon_time": item.get("phenomenonTime"), "result": item.get("result"),
            "result_time": item.get("resultTime"), "parameters": item.get("parameters"),
        }.items() if v is not None}
    if isinstance(item, dict):  # a pipeline-made letter spells absent fields as null
        return {k: v for k, v in item.items() if v is not None}
    return item


def redeliver(pipeline: Pipeline, letter: dict[str, Any], payload: str | None = None) -> Outcome:
    """Send one letter (or its corrected ``payload``) through the pipeline again."""
    try:
        items = readings_of(payload or letter["payload"], letter["source"])
    except InvalidInput as exc:
        return Outcome(letter["id"], False, exc.detail)
    report = pipeline.store(items, f"replay:{letter['id']}", keep_rejected=False)
    if report.rejected:
        first = report.rejected[0]
        return Outcome(letter["id"], False, f"{len(report.rejected)} still refused: {first.field}: {first.reason}")
    with pipeline.engine.begin() as conn:
        deadletters.mark_replayed(conn, letter["id"])
    return Outcome(letter["id"], True, f"{report.stored} stored, {report.duplicates} already there")
