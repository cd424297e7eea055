"""Pull from any OGC SensorThings API 1.1 server: its Things, Datastreams and Observations, with paging.

Each remote Datastream whose ObservedProperty matches the catalogue (by name, else by a definition
only one catalogue property has) gets a local Thing and Datastream, remembered by the remote URL
and id in their ``properties``, so a second pull adds only what is new. Observations go through
the ingest pipeline (``Pipeline.store``): the remote unit is converted, QC applies, and a reading
already stored is a duplicate. Datastreams that cannot be matched are refused with their reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import orjson
from sqlalchemy import Connection, Engine, select

from haechi.cities.provision import save_catalogue
from haechi.core.errors import InvalidInput
from haechi.ingest.pipeline import Pipeline
from haechi.model.catalogue import catalogue
from haechi.model.reading import Reading, Rejected
from haechi.store import sensing
from haechi.store.schema import datastreams, sensors, things

from .runs import Outcome, Progress, keep_rejected

PAGE = 1000
BATCH = 5000


def run(engine: Engine, url: str, outcome: Outcome, progress: Progress, *, client: httpx.Client | None = None,
        page: int = PAGE, **_) -> Outcome:
    """Pull every Datastream and its Observations, ``page`` entities per request (the server may send fewer)."""
    base = url.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise InvalidInput(f"a SensorThings service root URL is required, not {url!r}", field="url")
    own = client or httpx.Client(timeout=60, follow_redirects=True)
    pipeline = Pipeline(engine)
    try:
        remote = list(_pages(own, f"{base}/Datastreams", {"$expand": "Thing($expand=Locations),ObservedProperty",
                                                          "$top": str(page)}))
        for done, stream in enumerate(remote, 1):
            local = _local_stream(engine, base, stream, outcome)
            if local is not None:
                _pull_observations(own, base, stream, local, pipeline, outcome, page)
            progress(done, len(remote))
    except httpx.HTTPError as exc:
        raise InvalidInput(f"could not read {base}: {exc}", field="url") from None
    finally:
        if client is None:
            own.close()
    return outcome


def _pages(client: httpx.Client, url: str, params: dict[str, str] | None = None) -> Iterator[dict[str, Any]]:
    """Every entity of a collection, following ``@iot.nextLink`` (server-driven paging)."""
    next_url: str | None = url
    while next_url:
        response = client.get(next_url, params=params)
        response.raise_for_status()
        body = response.json()
        if not isinstance(body, dict) or not isinstance(body.get("value"), list):
            raise InvalidInput(f"{next_url}: not a SensorThings collection", field="url")
        yield from body["value"]
        next_url, params = body.get("@iot.nextLink"), None


def match_property(observed: dict[str, Any]) -> str | None:
    """The catalogue code of a remote ObservedProperty, or None when it cannot be told."""
    known = catalogue()
    name = (observed.get("name") or "").strip().lower()
    for code, prop in known.items():
        if name in (code, prop.name_en.lower(), prop.name_ko):
            return code
    same_definition = [c for c, p in known.items() if p.definition == observed.get("definition")]
    return same_definition[0] if len(same_definition) == 1 else None


def _local_stream(engine: Engine, base: str, stream: dict[str, Any], outcome: Outcome) -> tuple[int, str] | None:
    """(local datastream id, remote unit symbol), made on first sight; None if the property is unknown."""
    observed = stream.get("ObservedProperty") or {}
    code = match_property(observed)
    unit = (stream.get("unitOfMeasurement") or {}).get("symbol") or None
    with engine.begin() as conn:
        if code is None:
            reason = f"ObservedProperty {observed.get('name')!r} matches no catalogue property"
            outcome.reject(None, f"Datastreams({stream.get('@iot.id')})", reason)
            keep_rejected(conn, "sensorthings", [(reason, {"url": base, "datastream": stream})])
            outcome.ignored_columns.append(f"Datastreams({stream.get('@iot.id')}) {stream.get('name')}")
            return None
        key = {"imported_from": base, "remote_id": stream["@iot.id"]}
        existing = _find(conn, datastreams, key)
        if existing is not None:
            return existing, unit
        thing_id = _thing(conn, base, stream.get("Thing") or {})
        prop = catalogue()[code]
        stream_id = sensing.create_datastream(conn, {
            "name": stream.get("name") or prop.name_en, "description": stream.get("description") or "",
            "thing_id": thing_id, "sensor_id": _sensor(conn, base), "observed_property_id": save_catalogue(conn)[code],
            "unit_name": prop.unit_name, "unit_symbol": prop.unit_symbol, "unit_definition": prop.unit_definition,
            "properties": key})
        return stream_id, unit


def _find(conn: Connection, table, key: dict[str, Any]) -> int | None:
    for row_id, props in conn.execute(select(table.c.id, table.c.properties)):
        if isinstance(props, dict) and all(props.get(k) == v for k, v in key.items()):
            return row_id
    return None


def _thing(conn: Connection, base: str, remote: dict[str, Any]) -> int:
    key = {"imported_from": base, "remote_id": remote.get("@iot.id")}
    found = _find(conn, things, key)
    if found is not None:
        return found
    location_ids = [sensing.create_location(conn, {
        "name": loc.get("name") or "", "description": loc.get("description") or "",
        "encoding_type": loc.get("encodingType") or "application/geo+json", "location": loc["location"]})
        for loc in remote.get("Locations") or [] if isinstance(loc.get("location"), dict)]
    return sensing.create_thing(conn, {"name": remote.get("name") or "remote thing",
                                       "description": remote.get("description") or "",
                                       "properties": key}, location_ids)


def _sensor(conn: Connection, base: str) -> int:
    found = _find(conn, sensors, {"imported_from": base})
    return found if found is not None else sensing.create_sensor(conn, {
        "name": "remote SensorThings sensor", "description": f"as served by {base}", "encoding_type": "text/html",
        "metadata": base, "properties": {"imported_from": base}})


def _pull_observations(client: httpx.Client, base: str, stream: dict[str, Any], local: tuple[int, str | None],
                       pipeline: Pipeline, outcome: Outcome, page: int) -> None:
    stream_id, unit = local
    url = f"{base}/Datastreams({stream['@iot.id']})/Observations"
    params = {"$orderby": "phenomenonTime asc", "$top": str(page), "$select": "phenomenonTime,result"}
    batch: list[Reading | Rejected] = []
    for obs in _pages(client, url, params):
        batch.append(_reading(obs, stream_id, unit, len(batch)))
        if len(batch) >= BATCH:
            _store(pipeline, batch, outcome)
            batch = []
    _store(pipeline, batch, outcome)


def _reading(obs: dict[str, Any], stream_id: int, unit: str | None, index: int) -> Reading | Rejected:
    raw = orjson.dumps(obs).decode()
    try:
        when = datetime.fromisoformat(str(obs.get("phenomenonTime", "")).split("/")[0])
    except ValueError:
        return Rejected(index, f"unreadable time {obs.get('phenomenonTime')!r}", "phenomenonTime", raw)
    if when.tzinfo is None:
        return Rejected(index, "time without a UTC offset", "phenomenonTime", raw)
    result = obs.get("result")
    if isinstance(result, bool) or not isinstance(result, (int, float)):
        return Rejected(index, f"not a number: {result!r}", "result", raw)
    return Reading(stream_id, when, float(result), unit=unit)


def _store(pipeline: Pipeline, batch: list[Reading | Rejected], outcome: Outcome) -> None:
    if not batch:
        return
    report = pipeline.store(batch, "import:sensorthings")
    outcome.rows_read += report.received
    outcome.rows_rejected += len(report.rejected)
    outcome.rows_duplicate += report.duplicates
    outcome.rows_accepted += report.stored
    outcome.observations_stored += report.stored
    outcome.observations_duplicate += report.duplicates
    for flag, n in report.flags.items():
        outcome.quality[flag] += n
    for r in report.rejected:
        outcome.reject(r.index, r.field, r.reason)
