"""Every event on the bus, in one place: its name, who owns it, and the shape of its data.

Capabilities meet through these events and never call each other. The owner of a state change
publishes its event, whichever path made the change (the engine, an operator by hand, a drill, an
import); consumers subscribe by these names (or NATS-style patterns of them, ``alert.>``).
Payloads are JSON-ready dicts (times as ISO 8601 text), typed here so producers and consumers agree
on their keys; ``tests/test_events_vocabulary.py`` holds the producers to these types and fails on
an event name spelt anywhere but here.
"""

# No ``from __future__ import annotations`` here: Python 3.11's TypedDict sees NotRequired only in
# evaluated annotations, and the payload test reads required and optional keys from these types.
from collections.abc import Mapping
from typing import Any, Final, NotRequired, TypedDict

from haechi.core.events import Event


class StoredObservation(TypedDict):
    """One stored reading as the bus carries it: no row id, consumers key on stream and time."""

    datastream_id: int
    phenomenon_time: str  # ISO 8601, UTC
    result: float
    quality: str  # good · suspect · bad
    result_time: NotRequired[str]  # forecasts only: when the forecast was issued


class ObservationStored(TypedDict):
    """Owner: ingest (the pipeline, the worker) and predict (forecast streams). One committed batch."""

    source: str  # the adapter: mqtt, sta, http:<token>, a file import, predict:<model>
    observations: list[StoredObservation]


class WarningChanged(TypedDict):
    """Owner: warnings. One lifecycle step of a warning (hazard × area), on every path: the engine,
    the alert refresher, an operator by hand over the API, drills (``warnings.service.change_warning``).
    Published just before the ``alert.sent`` of the CAP alert announcing it."""

    warning_id: int
    kind: str  # issue · update · cancel
    hazard: str
    area: str  # area key: city:11, district:11590, dong:…, gauge:…, facility:N
    area_code: str | None  # the district it belongs to (the city's code when it spans several)
    level: str | None  # the level now in force; None once cancelled
    crisis_level: str | None  # attention · caution · alert · serious; None once cancelled
    value: float | None
    at: str  # ISO 8601: when the change became known
    exercise: bool  # a drill
    alert: str  # the CAP identifier of the alert announcing it
    alert_id: int


class WarningAcknowledged(TypedDict):
    """Owner: warnings. An operator acknowledged a warning: the warning as the public API shows it."""

    id: int
    hazard: str
    area_key: str
    area_code: str | None
    level: str
    crisis_level: str
    crisis_level_ko: str | None
    status: str  # active · cancelled
    value: float | None
    unit: str | None
    criterion: dict[str, Any] | None
    exercise: bool
    acknowledged_by: str | None  # the center (or role) that took charge, never a person
    unplaced: NotRequired[dict[str, str] | None]  # why it has no district: code, ko, en (kept all the same)
    issued_at: str | None
    updated_at: str | None
    cancelled_at: str | None
    acknowledged_at: str | None


class AlertSent(TypedDict):
    """A stored CAP alert, for the channels. Composed and stored by alerts (``alerts.publish``);
    published by warnings, right after the ``warning.changed`` it announces, on the same paths."""

    id: int
    identifier: str  # CAP <identifier>
    status: str  # Actual · Exercise · Test
    msg_type: str  # Alert · Update · Cancel
    hazard: str
    crisis_level: str | None
    area_codes: list[str]
    headline: dict[str, str]  # by CAP language tag: ko-KR, en-US …
    sent: str  # ISO 8601, KST


class SensorSilent(TypedDict):
    """Owner: ingest (the silence watcher). A stream stopped reporting (once per silence)."""

    datastream_id: int
    name: str | None
    last_time: str | None


class CareAlert(TypedDict):
    """Owner: care. A ward needs attention (geofence, missed check, SOS, hazard).

    Ids only, no personal data: the content goes to guardians through the guarded care channels.
    """

    alert_id: int
    kind: str
    at: str


class CareReport(TypedDict):
    """One device report as the API read it (``haechi.care.reports``): only the fields of its kind."""

    report: str  # position · activity · sos · refused
    device: str | None  # None only for a refused report that named no readable device
    at: NotRequired[str]  # ISO 8601, UTC; not for refused reports
    lon: NotRequired[float | None]  # position, sos (None: no fix)
    lat: NotRequired[float | None]
    accuracy_m: NotRequired[float | None]  # position
    kind: NotRequired[str | None]  # activity: door · motion · power; None = the device's own kind
    field: NotRequired[str]  # refused: what was wrong, why, and the report without its position
    reason: NotRequired[str]
    payload: NotRequired[str]


class CareReports(TypedDict):
    """Owner: care. Device reports an API replica took over HTTP and hands to the leading engine,
    whose care service judges them as if they had come to it (``POST /api/v1/care/reports/{kind}``).

    Positions of people: never on a live stream (:data:`PRIVATE`).
    """

    id: str  # unique per event: the engine stores each once, however often it is delivered
    source: str  # the dead letters' source: http:/api/v1/care/reports/<kind>
    received_at: str  # ISO 8601: when the API took them (consent is judged then)
    token_id: int | None  # the device token they came with: a device is bound to the first that speaks for it
    reports: list[CareReport]


class CareChanged(TypedDict):
    """Owner: care. A guardian changed a ward's zones, trip or consent through an API replica; the
    leading engine's care service reloads that ward from the store (twice is harmless).

    Never on a live stream (:data:`PRIVATE`): it says which ward is being watched, and when.
    """

    ward_id: int
    what: str  # zone · trip · consent: what changed (the engine reloads all three alike)


class IncidentChanged(TypedDict):
    """Owner: response. An incident after one step: opened, status, handoff, note, dispatch, arrival,
    cctv_event (``response.incidents.changed_event``); care announces a missing-person incident it
    opens the same way, so the room and the 119 desk see every incident live."""

    id: int
    kind: str
    title: str
    severity: str  # low · medium · high · critical
    status: str
    center: str
    lon: float | None
    lat: float | None
    area_code: str | None
    source: str  # operator · report · warning · cctv · care
    updated_at: str
    action: str


class UnitChanged(TypedDict):
    """Owner: response. A 119 unit after a change (registered, status, position, dispatch, release)."""

    id: int
    station_place_id: int
    call_sign: str
    unit_type: str
    status: str  # available · dispatched · on_scene · returning · out_of_service
    lon: float | None  # its own position, else its station's
    lat: float | None
    status_changed_at: str | None
    station_name_ko: str | None
    station_name_en: str | None
    station_lon: float | None
    station_lat: float | None
    incident_id: int | None  # the incident of its open dispatch


class DroneChanged(TypedDict):
    """Owner: response. A drone after an assignment to an incident or a release back to base."""

    id: int
    call_sign: str
    model: str | None
    base_place_id: int | None
    base_lon: float
    base_lat: float
    thing_id: int | None
    datastreams: dict[str, int]  # telemetry property → datastream id
    incident_id: int | None
    created_at: str


class DronePosition(TypedDict):
    """Owner: response (from stored telemetry, however it came). A drone's newest fix, whole."""

    drone_id: int
    call_sign: str
    lon: float
    lat: float
    time: str  # the newest phenomenon time in the fix
    altitude_m: NotRequired[float]
    battery_pct: NotRequired[float]


class CctvEvent(TypedDict):
    """Owner: response. A camera analytics event accepted (its incident, if it opened or joined one)."""

    id: int
    event_id: str  # the camera system's own id
    camera_place_id: int
    event_type: str  # smoke_fire · fall · intrusion · crowd_density
    observed_at: str
    lon: float
    lat: float
    density: float | None  # persons per m², crowd_density only
    incident_id: int | None


#: Event names. Dotted, lower case; the first segment is the owning subject.
OBSERVATION_STORED: Final = "observation.stored"
SENSOR_SILENT: Final = "sensor.silent"
WARNING_CHANGED: Final = "warning.changed"
WARNING_ACKNOWLEDGED: Final = "warning.acknowledged"
ALERT_SENT: Final = "alert.sent"
CARE_ALERT: Final = "care.alert"
CARE_REPORTS: Final = "care.reports"
CARE_CHANGED: Final = "care.changed"
INCIDENT_CHANGED: Final = "incident.changed"
UNIT_CHANGED: Final = "unit.changed"
DRONE_CHANGED: Final = "drone.changed"
DRONE_POSITION: Final = "drone.position"
CCTV_EVENT: Final = "cctv.event"

#: Each name with its payload type: the vocabulary a test checks producers against.
#: Events whose payload is personal data (a ward's positions, as the devices reported them). The
#: event stream keeps events 7 days for replays and reconnecting clients; these are erased from it
#: as soon as their consumer has handled them, so no one's whereabouts outlive the care tables'
#: own retention on the bus.
ERASED_ONCE_HANDLED: Final = frozenset({CARE_REPORTS})

PAYLOADS: Final[dict[str, type]] = {
    OBSERVATION_STORED: ObservationStored,
    SENSOR_SILENT: SensorSilent,
    WARNING_CHANGED: WarningChanged,
    WARNING_ACKNOWLEDGED: WarningAcknowledged,
    ALERT_SENT: AlertSent,
    CARE_ALERT: CareAlert,
    CARE_REPORTS: CareReports,
    CARE_CHANGED: CareChanged,
    INCIDENT_CHANGED: IncidentChanged,
    UNIT_CHANGED: UnitChanged,
    DRONE_CHANGED: DroneChanged,
    DRONE_POSITION: DronePosition,
    CCTV_EVENT: CctvEvent,
}

#: Events anyone may follow on the live stream: they name no person and no staff-only place.
#: Every other event (incidents, units, drones, CCTV, care) is for staff.
PUBLIC: Final = frozenset({OBSERVATION_STORED, SENSOR_SILENT, WARNING_CHANGED, WARNING_ACKNOWLEDGED, ALERT_SENT})
#: Events no live stream shows, to staff neither: they carry people's positions, which only a ward's
#: guardians read (or operators during a missing-person search, each read logged).
PRIVATE: Final = frozenset({CARE_REPORTS, CARE_CHANGED})


def event(name: str, data: Mapping[str, Any]) -> Event:
    """An event of a declared ``name``: a misspelt one fails here, not silently with no subscriber."""
    if name not in PAYLOADS:
        raise ValueError(f"undeclared event {name!r}: declare it in haechi/model/events.py")
    return Event(name, dict(data))

