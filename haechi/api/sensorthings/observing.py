"""Observations in through the ingest pipeline: POST an Observation (OGC 18-088 §10.2) and the
``CreateObservations`` dataArray request (§13.3).

Every observation goes through ``Pipeline.ingest`` with source ``sta``: quality control flags it,
a resend of the same (Datastream, phenomenonTime) is stored once, and whatever cannot be stored
— a malformed body, an unknown Datastream, a missing FeatureOfInterest — is kept in the
dead-letter store with its reason before the client hears the refusal.

A FeatureOfInterest not given is derived from the Location of the Datastream's Thing, as §10.2
asks, and reused for later observations at the same place; observations whose Thing has no
Location and that name no FeatureOfInterest are refused.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine

from haechi.core.clock import as_utc
from haechi.model.reading import Reading, Rejected
from haechi.store import sensing
from haechi.store.schema import datastreams, features_of_interest

from .entities import (
    DATASTREAM,
    FEATURE_OF_INTEREST,
    OBSERVATION,
    EntityType,
    known_names,
    max_id,
    parse_time,
)
from .errors import BadRequest
from .writing import decode_properties, link_id

SOURCE = "sta"
#: The dataArray components 18-088 §13.3 allows (``id`` is refused: ids are the service's).
COMPONENTS = ("phenomenonTime", "result", "resultTime", "resultQuality", "validTime", "parameters",
              "FeatureOfInterest/id")
_OBSERVATION_KEYS = {"phenomenonTime", "result", "resultTime", "resultQuality", "validTime", "parameters",
                     "Datastream", "FeatureOfInterest", "@iot.selfLink"}
#: The pipeline's field names as a SensorThings client knows them.
_PIPELINE_FIELDS = {"datastream_id": "Datastream", "unit": "Datastream", "result": "result",
                    "phenomenon_time": "phenomenonTime"}


@dataclass(frozen=True, slots=True)
class Draft:
    """One observation checked in form: its reading and its FeatureOfInterest as given."""

    reading: Reading
    feature_id: int | None = None  # linked by id
    feature: dict[str, Any] | None = None  # given inline, as columns


@dataclass
class Batch:
    """Observations on their way in: each index holds a Draft or, once refused, a Rejected."""

    items: list[Draft | Rejected] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)

    def add(self, raw: str, make: Callable[..., Draft], *args: Any) -> None:
        """Append ``make(*args)``'s Draft, or a Rejected with the reason it raised."""
        index = len(self.items)
        try:
            self.items.append(make(*args))
        except BadRequest as exc:
            self.items.append(Rejected(index, exc.detail, exc.field, raw))
        self.raw.append(raw)

    def refuse(self, index: int, reason: str, field_name: str) -> None:
        self.items[index] = Rejected(index, reason, field_name, self.raw[index])

    def readings(self) -> list[Reading | Rejected]:
        return [i.reading if isinstance(i, Draft) else i for i in self.items]

    def drafts(self) -> dict[int, Draft]:
        return {i: d for i, d in enumerate(self.items) if isinstance(d, Draft)}


# ── checking form (pure) ──────────────────────────────────────────────────────────────────


def draft_from_body(body: Any, now: datetime) -> Draft:
    """A POSTed Observation (18-088 §8.2.7); its Datastream must be a link ``{"@iot.id": n}``."""
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object (an Observation)", field="body")
    unknown = set(body) - _OBSERVATION_KEYS
    if unknown:
        name = min(unknown)
        raise BadRequest(f"an Observation has no property {name!r}; it has {', '.join(known_names(OBSERVATION))}",
                         field=f"body.{name}")
    if "@iot.id" in body:
        raise BadRequest("ids are assigned by the service", field="body.@iot.id")
    stream = body.get("Datastream")
    if not isinstance(stream, dict) or link_id(stream, "body.Datastream") is None:
        raise BadRequest('an Observation needs its Datastream as a link: "Datastream": {"@iot.id": n}',
                         field="body.Datastream")
    reading = reading_of(_known_id(DATASTREAM, stream, "body.Datastream"), body, now, "body")
    feature = body.get("FeatureOfInterest")
    if feature is None:
        return Draft(reading)
    if not isinstance(feature, dict):
        raise BadRequest("FeatureOfInterest must be an object or a link", field="body.FeatureOfInterest")
    if link_id(feature, "body.FeatureOfInterest") is not None:
        return Draft(reading, feature_id=_known_id(FEATURE_OF_INTEREST, feature, "body.FeatureOfInterest"))
    return Draft(reading, feature=inline_feature(feature, "body.FeatureOfInterest"))


def _known_id(entity: EntityType, link: dict[str, Any], label: str) -> int:
    """A linked id the entity's table can hold at all (a larger one names nothing there)."""
    entity_id = link_id(link, label)
    if entity_id > max_id(entity):
        raise BadRequest(f"there is no {entity.name} with id {entity_id}", field=label)
    return entity_id


def inline_feature(body: dict[str, Any], label: str) -> dict[str, Any]:
    row = decode_properties(FEATURE_OF_INTEREST, body, label, required=True)
    return {"description": "", "encoding_type": "application/geo+json", **row}


def reading_of(datastream_id: int, values: dict[str, Any], now: datetime, label: str) -> Reading:
    """The pipeline's Reading for an Observation's values; what cannot be stored is refused by name."""
    for unstored, why in (("resultQuality", "is assigned by this service's quality control"),
                          ("validTime", "is not stored by this service")):
        if values.get(unstored) is not None:
            raise BadRequest(f"{unstored} {why}; leave it out", field=f"{label}.{unstored}")
    parameters = values.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise BadRequest("parameters must be a JSON object", field=f"{label}.parameters")
    given_time = values.get("phenomenonTime")
    result_time = values.get("resultTime")
    return Reading(
        datastream_id=datastream_id,
        phenomenon_time=now if given_time is None else parse_time(given_time, f"{label}.phenomenonTime"),
        result=_number(values.get("result", ...), f"{label}.result"),
        result_time=None if result_time is None else parse_time(result_time, f"{label}.resultTime"),
        parameters=parameters or None,
    )


def _number(value: Any, label: str) -> float:
    if value is ...:
        raise BadRequest("an Observation needs its result", field=label)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"result must be a number: this service stores numeric results (got {value!r})",
                         field=label)
    if not math.isfinite(float(value)):
        raise BadRequest(f"result must be finite (got {value})", field=label)
    return float(value)


def data_array_batch(body: Any, now: datetime) -> Batch:
    """The rows of a CreateObservations body (18-088 §13.3), one Draft or Rejected each.

    A body whose shape is wrong is refused whole; a row that is wrong is refused alone.
    """
    if not isinstance(body, list):
        raise BadRequest("the body must be a JSON array of {Datastream, components, dataArray}", field="body")
    batch = Batch()
    for g, group in enumerate(body):
        stream, components, rows = _group(group, f"body.{g}")
        for r, values in enumerate(rows):
            raw = orjson.dumps({"Datastream": {"@iot.id": stream}, "components": components,
                                "dataArray": [values]}).decode()
            batch.add(raw, _row, stream, components, values, now, f"body.{g}.dataArray.{r}")
    return batch


def _group(group: Any, label: str) -> tuple[int, list[str], list[Any]]:
    if not isinstance(group, dict):
        raise BadRequest(f"{label} must be an object with Datastream, components and dataArray", field=label)
    unknown = set(group) - {"Datastream", "components", "dataArray", "dataArray@iot.count"}
    if unknown:
        raise BadRequest(f"{label}: unknown member {min(unknown)!r}", field=f"{label}.{min(unknown)}")
    stream = group.get("Datastream")
    if not isinstance(stream, dict) or link_id(stream, f"{label}.Datastream") is None:
        raise BadRequest('Datastream must be a link {"@iot.id": n}', field=f"{label}.Datastream")
    stream_id = _known_id(DATASTREAM, stream, f"{label}.Datastream")
    components = group.get("components")
    if not isinstance(components, list) or not components or not all(isinstance(c, str) for c in components):
        raise BadRequest(f"components must name the columns, from {', '.join(COMPONENTS)}",
                         field=f"{label}.components")
    wrong = [c for c in components if c not in COMPONENTS]
    if wrong or len(set(components)) != len(components) or "result" not in components:
        detail = "ids are assigned by the service" if "id" in wrong else f"use {', '.join(COMPONENTS)} once each"
        raise BadRequest(f"components must include result; {detail}", field=f"{label}.components")
    rows = group.get("dataArray")
    if not isinstance(rows, list):
        raise BadRequest("dataArray must be an array of rows", field=f"{label}.dataArray")
    return stream_id, components, rows


def _row(stream: int, components: list[str], values: Any, now: datetime, label: str) -> Draft:
    if not isinstance(values, list) or len(values) != len(components):
        raise BadRequest(f"each row must be an array of {len(components)} values, as components", field=label)
    named = dict(zip(components, values))
    feature = named.pop("FeatureOfInterest/id", None)
    reading = reading_of(stream, named, now, label)
    if feature is None:
        return Draft(reading)
    if isinstance(feature, bool) or not isinstance(feature, int) or not 0 < feature <= max_id(FEATURE_OF_INTEREST):
        raise BadRequest("FeatureOfInterest/id must be a positive integer", field=f"{label}.FeatureOfInterest/id")
    return Draft(reading, feature_id=feature)


# ── before and after the pipeline (in a worker thread) ────────────────────────────────────


def check_features(engine: Engine, batch: Batch) -> dict[int, int | dict[str, Any]]:
    """Each draft's FeatureOfInterest-to-be — an id, or the columns of one to find or create.

    Drafts that can have none are refused in ``batch``. Drafts of unknown Datastreams are left
    for the pipeline, which refuses them in its own words.
    """
    plans: dict[int, int | dict[str, Any]] = {}
    with engine.connect() as conn:
        missing = sensing.missing_ids(conn, features_of_interest, [d.feature_id for d in batch.drafts().values()
                                                                   if d.feature_id is not None])
        places: dict[int, dict[str, Any] | None] = {}
        for index, draft in batch.drafts().items():
            stream = draft.reading.datastream_id
            if draft.feature_id in missing:
                batch.refuse(index, f"there is no FeatureOfInterest with id {draft.feature_id}", "FeatureOfInterest")
            elif draft.feature_id is not None or draft.feature is not None:
                plans[index] = draft.feature_id or draft.feature
            elif (place := places.setdefault(stream, _place_of(conn, stream))) is not None:
                plans[index] = place
            elif sensing.row_exists(conn, datastreams, stream):
                batch.refuse(index, f"the Thing of Datastream {stream} has no Location to derive a "
                                    "FeatureOfInterest from; give one", "FeatureOfInterest")
    return plans


def _place_of(conn: Connection, datastream_id: int) -> dict[str, Any] | None:
    """18-088 §10.2: the FeatureOfInterest derived from the Thing's current Location."""
    location = sensing.current_location_of_stream(conn, datastream_id)
    if location is None:
        return None
    return {"name": location["name"], "description": location["description"],
            "encoding_type": location["encoding_type"], "feature": location["location"]}


def finish(engine: Engine, batch: Batch, plans: dict[int, int | dict[str, Any]],
           refused: set[int]) -> list[int | None]:
    """After storing: the id of each stored observation (None where refused), FeaturesOfInterest attached."""
    ids: list[int | None] = [None] * len(batch.items)
    with engine.begin() as conn:
        stored = {i: d for i, d in batch.drafts().items() if i not in refused}
        for stream in {d.reading.datastream_id for d in stored.values()}:
            mine = {i: d for i, d in stored.items() if d.reading.datastream_id == stream}
            found = sensing.observation_ids(conn, stream, [d.reading.phenomenon_time for d in mine.values()])
            for i, d in mine.items():
                ids[i] = found.get(as_utc(d.reading.phenomenon_time))
        by_feature: dict[int, list[int]] = {}
        known: dict[int, int] = {}  # id(plan) → feature id: a derived plan is shared by its stream's rows
        for i in stored:
            if ids[i] is not None and i in plans:
                plan = plans[i]
                if id(plan) not in known:
                    known[id(plan)] = _feature_id(conn, plan)
                by_feature.setdefault(known[id(plan)], []).append(ids[i])
        for feature_id, observation_ids in by_feature.items():
            sensing.attach_feature(conn, observation_ids, feature_id)
    return ids


def _feature_id(conn: Connection, plan: int | dict[str, Any]) -> int:
    if isinstance(plan, int):
        return plan
    return sensing.feature_like(conn, plan) or sensing.create_feature(conn, plan)


def refusal_field(rejected: Rejected) -> str:
    """The body field a pipeline refusal is about, as the client named it."""
    name = rejected.field or "body"
    name = _PIPELINE_FIELDS.get(name, name)
    return name if name.startswith("body") else f"body.{name}"
