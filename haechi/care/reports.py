"""Device messages (positions, activity, SOS) read and checked, without I/O.

A refused message is kept as a dead letter, but positions are personal data: the kept payload
never holds a valid coordinate pair (``redacted``), only what explains the refusal.

Read reports travel to the leading engine as JSON (``care.reports``, :func:`in_events`) when the
API replica that took them over HTTP does not judge them itself.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from haechi.core.clock import as_utc

DEVICE_REF = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
TOPIC_KINDS = ("position", "activity", "sos")
ACTIVITY_KINDS = ("door", "motion", "power")
WITHHELD = "(withheld: personal location data)"
MAX_MESSAGE_BYTES = 64 * 1024
#: Largest ``care.reports`` event: well under NATS's default 1 MB message limit, whatever the HTTP
#: body limit lets in (a refused report's kept payload is JSON inside JSON: escaping can double it).
MAX_EVENT_BYTES = 256 * 1024
#: Room left in an event for what surrounds its reports (id, source, times, token).
EVENT_ENVELOPE_BYTES = 1024


@dataclass(frozen=True, slots=True)
class Position:
    device: str
    at: datetime
    lon: float
    lat: float
    accuracy_m: float | None = None


@dataclass(frozen=True, slots=True)
class Activity:
    device: str
    at: datetime
    kind: str | None  # None: the device's own kind


@dataclass(frozen=True, slots=True)
class Sos:
    device: str
    at: datetime
    lon: float | None
    lat: float | None


@dataclass(frozen=True, slots=True)
class Refused:
    device: str | None
    field: str
    reason: str
    payload: str  # redacted JSON of what arrived


def topic_parts(topic: str, prefix: str) -> tuple[str, str] | None:
    """(device ref, message kind) of ``<prefix>/<device>/<position|activity|sos>``, or None."""
    head, _, rest = topic.rpartition("/")
    base, _, device = head.rpartition("/")
    if base != prefix or rest not in TOPIC_KINDS or not DEVICE_REF.fullmatch(device):
        return None
    return device, rest


def decode_message(topic: str, payload: bytes, prefix: str, now: datetime,
                   max_future_s: float) -> list[Position | Activity | Sos | Refused]:
    """One MQTT message (an object or an array of them) read into reports and refusals."""
    parts = topic_parts(topic, prefix)
    if parts is None:
        # kept without its body: a misaddressed report may still carry someone's position
        return [Refused(None, "topic", f"topic {topic!r} is not {prefix}/<device>/position|activity|sos",
                        f"({len(payload)} bytes, not kept: the topic names no device)")]
    device, kind = parts
    if len(payload) > MAX_MESSAGE_BYTES:
        return [Refused(device, "payload", f"message of {len(payload)} bytes exceeds {MAX_MESSAGE_BYTES}",
                        "(dropped: too large)")]
    try:
        document = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        return [Refused(device, "payload", f"not valid JSON: {exc}", "(unreadable payload dropped)")]
    items = document if isinstance(document, list) else [document]
    return [read_item(kind, {"device": device, **item} if isinstance(item, dict) else item, now, max_future_s)
            for item in items]


def read_item(kind: str, item: Any, now: datetime, max_future_s: float) -> Position | Activity | Sos | Refused:
    """One report of ``kind`` (position · activity · sos); ``item["device"]`` names the device."""
    if not isinstance(item, dict):
        return Refused(None, "payload", "each report must be a JSON object", "(not an object)")
    device = item.get("device")
    if not isinstance(device, str) or not DEVICE_REF.fullmatch(device):
        return _refuse(item, "device", "device must be the device's id (letters, digits, _ . -; 1–64)")
    try:
        at = _moment(item.get("at"), now, max_future_s)
        if kind == "activity":
            what = item.get("kind")
            if what is not None and what not in ACTIVITY_KINDS:
                raise _Bad("kind", f"kind must be one of {', '.join(ACTIVITY_KINDS)}")
            return Activity(device, at, what)
        required = kind == "position" or item.get("lon") is not None or item.get("lat") is not None
        lon = _coordinate(item, "lon", 180.0) if required else None
        lat = _coordinate(item, "lat", 90.0) if required else None
        if kind == "sos":
            return Sos(device, at, lon, lat)
        return Position(device, at, lon, lat, _accuracy(item.get("accuracy_m")))
    except _Bad as bad:
        return _refuse(item, bad.field, bad.reason)


class _Bad(Exception):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field, self.reason = field, reason


def _moment(value: Any, now: datetime, max_future_s: float) -> datetime:
    if not isinstance(value, str):
        raise _Bad("at", "at must be an ISO 8601 time with its offset, e.g. 2026-05-01T08:30:00+09:00")
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise _Bad("at", f"at {value!r} is not an ISO 8601 time") from None
    if at.tzinfo is None:
        raise _Bad("at", "at must carry its UTC offset (Z or +09:00)")
    at = as_utc(at)
    if at > now + timedelta(seconds=max_future_s):
        raise _Bad("at", f"at {value} is in the future (more than {max_future_s:g} s ahead of the server)")
    return at


def _coordinate(item: dict[str, Any], name: str, limit: float) -> float:
    value = item.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _Bad(name, f"{name} must be a number of decimal degrees (WGS84)")
    if not -limit <= value <= limit:
        raise _Bad(name, f"{name} {value} is out of range (−{limit:g} … {limit:g})")
    return float(value)


def _accuracy(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 100_000:
        raise _Bad("accuracy_m", "accuracy_m must be metres between 0 and 100000")
    return float(value)


def _refuse(item: dict[str, Any], field: str, reason: str) -> Refused:
    device = item.get("device") if isinstance(item.get("device"), str) else None
    return Refused(device, field, f"{field}: {reason}", redacted(item, keep=field))


def redacted(item: dict[str, Any], keep: str | None = None) -> str:
    """The report as JSON without a usable position: coordinates withheld unless they are the fault."""
    shown = {k: (WITHHELD if k in ("lon", "lat") and k != keep else v) for k, v in item.items()}
    return orjson.dumps(shown, default=str).decode()


def _text(payload: bytes) -> str:
    return payload.decode("utf-8", errors="replace")


# ── on the bus: reports an API replica hands to the leading engine ─────────────────────────


#: Each report's class by the name it travels under.
WIRE = {"position": Position, "activity": Activity, "sos": Sos, "refused": Refused}


def to_wire(item: Position | Activity | Sos | Refused) -> dict[str, Any]:
    """A read report as JSON-ready data (``haechi.model.events.CareReport``); :func:`from_wire` reads it back."""
    fields = {f.name: getattr(item, f.name) for f in dataclasses.fields(item)}
    if "at" in fields:
        fields["at"] = fields["at"].isoformat()
    return {"report": type(item).__name__.lower(), **fields}


def from_wire(data: Mapping[str, Any]) -> Position | Activity | Sos | Refused:
    fields = {k: v for k, v in data.items() if k != "report"}
    if "at" in fields:
        fields["at"] = datetime.fromisoformat(fields["at"])
    return WIRE[data["report"]](**fields)


def in_events(items: Sequence[Position | Activity | Sos | Refused],
              max_bytes: int = MAX_EVENT_BYTES) -> list[list[dict[str, Any]]]:
    """The reports as JSON, in order, in groups that each fit one event of ``max_bytes``. A refused
    report too large alone (its kept payload, or a reason quoting a huge value) keeps only why."""
    budget = max_bytes - EVENT_ENVELOPE_BYTES
    groups: list[list[dict[str, Any]]] = []
    size = budget + 1  # the first report opens a group
    for item in items:
        wire = to_wire(item)
        length = len(orjson.dumps(wire)) + 1
        if length > budget and isinstance(item, Refused):
            wire = to_wire(Refused(None, item.field, item.reason[:500],
                                   f"({length} bytes, not kept: more than a bus message holds)"))
            length = len(orjson.dumps(wire)) + 1
        if size + length > budget:
            groups.append([])
            size = 0
        groups[-1].append(wire)
        size += length
    return groups
