"""The warnings service: stored observations in, warnings and CAP alerts out, over the bus.

Listens to ``observation.stored``; feeds QC-good readings to the pure engine; for each lifecycle
change it records the warning (one active per hazard × area), composes the CAP alert with its
target area and the people inside, stores it, and publishes ``warning.changed`` and
``alert.sent`` for the channels. A failure to alert is logged and never stops ingest.

Every path that changes a warning goes through :func:`change_warning`: the engine, the alert
refresher, an operator by hand (``manual.py``, over the API or the CLI) and drills, so the owner
publishes the same two events whoever made the change.

A warning whose area cannot be placed (its sensor has no location, or lies outside every loaded
district) is never dropped: it is recorded with the reason (``warnings.unplaced``), announced as
usual, and kept in the dead letters with that reason for an operator to place the sensor. A stream
that had no district when the engine first met it is placed again before its readings are judged
(:meth:`WarningService.place_unplaced`), so a Location linked later takes effect.

Exactly once, by construction: a change's CAP identifier is derived from what it announces
(hazard, area, time, kind) and unique in the DB, so recording a change already recorded — the
same readings processed again by another engine after a failover, or by two at once — finds
the stored alert and changes nothing (:func:`record_change`). A new leader rebuilds the engine
from the integrated DB before it acts (:meth:`WarningService.rebuild`): the warnings in force,
then the recent readings replayed, so windows and persistence timers are as the dead leader
left them, and a change it never recorded is recorded now, stamped with its reading's time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import anyio.to_thread
import orjson
from sqlalchemy import Engine as Database
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError

from haechi.alerts.compose import identifier_time, make_identifier
from haechi.alerts.publish import alert_sent, alerts_for_change
from haechi.cities.targeting import AreaFacts, area_facts, place_streams
from haechi.core.clock import utcnow
from haechi.core.events import Bus, Event
from haechi.model.catalogue import catalogue
from haechi.model.events import ALERT_SENT, OBSERVATION_STORED, WARNING_CHANGED, AlertSent, WarningChanged, event
from haechi.model.hazards import Change, Criterion
from haechi.store import deadletters
from haechi.store import warnings as store
from haechi.store.schema import datastreams, facilities, observed_properties, places, things

from .criteria import load_criteria
from .engine import RuleEngine, StreamInfo

log = logging.getLogger(__name__)
#: An alert of a warning still in force is re-announced this long before it expires.
REFRESH_BEFORE = timedelta(minutes=15)
#: How late after its time a reading may reach the engine and still raise a change when a new
#: leader replays it: the slowest live feed, AirKorea's hourly means, is published within the
#: hour after the hour it averages; an engine's own backlog is seconds. Anything older — imported
#: history above all — only rebuilds state, and never raises an alert on a takeover.
LATE_READINGS = timedelta(hours=1)
#: Forecast properties (``predict/data/forecast_properties.csv``) are named so; their changes are
#: stamped with the forecast's result time (when it was made), as ``predict.publish.announce``
#: gives it to the live engine. Other readings are judged on their phenomenon time only.
FORECAST_PREFIX = "forecast_"


def describe_streams(conn, ids: set[int] | None = None) -> dict[int, StreamInfo]:
    """Every datastream (or these) as the engine needs it: property, district, station, facility type."""
    ds, op, th, pl, fa = datastreams.c, observed_properties.c, things.c, places.c, facilities.c
    query = (
        select(ds.id, op.code, ds.area_code, ds.thing_id, pl.kind, pl.ref, fa.facility_type, fa.safety_grade)
        .join(observed_properties, op.id == ds.observed_property_id)
        .join(things, th.id == ds.thing_id)
        .outerjoin(places, pl.id == th.place_id)
        .outerjoin(facilities, fa.place_id == pl.id)
    )
    if ids is not None:
        query = query.where(ds.id.in_(sorted(ids)))
    intervals = {code: p.limits.interval_s for code, p in catalogue().items()}
    return {
        r.id: StreamInfo(r.id, r.code, r.area_code, r.thing_id, r.kind, r.ref, r.facility_type, r.safety_grade,
                         intervals.get(r.code, 600.0))
        for r in conn.execute(query)
    }


class WarningService:
    def __init__(self, engine: Database, bus: Bus, *, sender: str = "haechi@seoul.go.kr",
                 criteria: list[Criterion] | None = None, now: Callable[[], datetime] = utcnow) -> None:
        self.db, self.bus, self.sender, self.now = engine, bus, sender, now
        self.streams: dict[int, StreamInfo] = {}
        self.engine = RuleEngine(criteria if criteria is not None else load_criteria(), self._describe)
        self._unsubscribe: Callable[[], None] | None = None
        self._ready = asyncio.Event()
        self._ready.set()  # a service never started judges at once (tests feed on_stored directly)
        #: Changes decided but not yet recorded because the DB was unreachable, oldest first: they
        #: are recorded before anything newer, and the event that brought them is not acknowledged.
        self._unrecorded: list[Change] = []
        self._recording = asyncio.Lock()  # batches handled at once record their changes in order

    async def start(self) -> None:
        """Subscribe, then rebuild from the DB before judging anything: readings arriving meanwhile
        wait (a durable consumer keeps them; the in-process bus holds their publisher)."""
        self._ready = asyncio.Event()
        self._unsubscribe = self.bus.subscribe(OBSERVATION_STORED, self.on_stored)
        try:
            for recorded in await anyio.to_thread.run_sync(self.rebuild):
                await _publish(self.bus, recorded)
        finally:
            self._ready.set()

    def restore(self) -> int:
        """Warnings in force survive a restart: the engine takes them back, ready to update or lift."""
        with self.db.connect() as conn:
            active = [w for w in store.list_warnings(conn, limit=100_000) if w["datastream_id"] and not w["exercise"]]
        return sum(self.engine.restore(w["datastream_id"], w["hazard"], w["level"]) for w in active)

    def rebuild(self) -> list[Recorded]:
        """Take over from the DB: the warnings in force, then the recent good readings of every
        watched stream replayed in time order (from :meth:`RuleEngine.history_starts`), so the
        engine's windows and timers are those of an engine that never stopped.

        What the replay decides is believed only for readings at most ``LATE_READINGS`` old and
        after the last change recorded for that hazard and area; those go through the idempotent
        :func:`record_change` (a change the dead leader did record is a no-op; one it never did is
        recorded now, at its reading's time, with the identifier it would have had). Anything
        earlier was decided already: the engine takes the recorded state instead of its own.
        Returns the changes newly recorded (to announce).
        """
        believe_from = self.now() - LATE_READINGS
        self.restore()
        history = self._history(believe_from)
        recorded = []
        for sid, time, value, result_time in history.readings:
            issued = result_time if self.streams[sid].property.startswith(FORECAST_PREFIX) else None
            for change in self.engine.observe(sid, time, value, "good", issued):
                done = self._replayed(change, history, believe_from)
                recorded += [done] if done is not None and done.new else []
        self.restore()  # e.g. a heat wave's apparent-temperature stream exists only once replayed
        log.info("warnings engine rebuilt from %d readings since %s; %d changes recorded on taking over",
                 len(history.readings), history.since.isoformat(), len(recorded))
        return recorded

    def _history(self, believe_from: datetime) -> _History:
        starts = self.engine.history_starts(believe_from)
        with self.db.connect() as conn:
            self.streams = describe_streams(conn)
            by_start: dict[datetime, list[int]] = {}
            for sid, info in self.streams.items():
                if info.property in starts and self.engine.watches(sid):
                    by_start.setdefault(starts[info.property], []).append(sid)
            readings = [r for start, ids in by_start.items() for r in store.good_readings(conn, ids, start)]
            since = min(by_start, default=believe_from)
            in_force = {(w["hazard"], w["area_key"]): (w["datastream_id"], w["level"])
                        for w in store.list_warnings(conn, limit=100_000) if not w["exercise"]}
            return _History(sorted(readings, key=lambda r: (r[1], r[0])), since,
                            _settled(store.recent_alerts(conn, since)), in_force)

    def _replayed(self, change: Change, history: _History, believe_from: datetime) -> Recorded | None:
        """A change the replay decided: recorded if it is to be believed, else the record's state
        taken instead (for its hazard and area)."""
        key = (change.hazard, change.area)
        if change.at >= believe_from and _second(change.at) > history.settled.get(key, believe_from):
            done = self._record_missed(change)
            if done is not None:
                history.settled[key] = _second(change.at)
                history.in_force[key] = None if change.kind == "cancel" else (
                    (history.in_force.get(key) or (change.datastream_id, None))[0], change.criterion.level)
                return done
        self.engine.settle(change.hazard, change.area, *(history.in_force.get(key) or (None, None)))
        return None

    def _record_missed(self, change: Change) -> Recorded | None:
        try:
            return record_change(self.db, change, sender=self.sender, now=self.now())
        except OperationalError:
            raise  # the DB is away: this engine cannot take over now
        except Exception:
            log.exception("could not record %s of %s in %s on taking over", change.kind, change.hazard, change.area)
            return None

    def stop(self) -> None:
        if self._unsubscribe:
            self._unsubscribe()

    def _describe(self, stream_id: int) -> StreamInfo | None:
        if stream_id not in self.streams:  # a datastream made since: reload the map once
            with self.db.connect() as conn:
                self.streams = describe_streams(conn)
        return self.streams.get(stream_id)

    def _unplaced(self, stream_id: int) -> bool:
        info = self.streams.get(stream_id)
        return info is not None and not info.area_code

    def place_unplaced(self, stream_ids: set[int]) -> None:
        """Place streams that had no district (a Location linked or a pack loaded since) and let
        the engine judge them for it; a stream with a warning in force keeps its area until lifted."""
        with self.db.begin() as conn:
            place_streams(conn, stream_ids)
            described = describe_streams(conn, stream_ids)
        for sid, info in described.items():
            if info.area_code and self.engine.relocate(sid, info.area_code):
                self.streams[sid] = info

    def due_for_refresh(self, now: datetime) -> list[tuple[Change, bool, bool]]:
        """Warnings still in force whose latest alert expires within ``REFRESH_BEFORE``: they get an
        Update, with whether it is a drill and whether a test (as their latest message was)."""
        due = []
        with self.db.connect() as conn:
            for w in store.list_warnings(conn, limit=100_000):
                alert = store.latest_alert_of(conn, w["id"])
                if alert is None or alert["expires"] is None or alert["expires"] - now > REFRESH_BEFORE:
                    continue
                criterion = next((c for c in self.engine.criteria
                                  if c.hazard == w["hazard"] and c.level == w["level"]), None)
                if criterion is not None:
                    due.append((Change("update", w["hazard"], w["area_key"], criterion, criterion, w["value"], now,
                                       w["datastream_id"]), *practice_of(w, alert)))
        return due

    async def refresh(self) -> int:
        """Re-announce warnings in force before their alerts expire, so no alert lapses silently."""
        due = await anyio.to_thread.run_sync(self.due_for_refresh, self.now())
        for change, exercise, test in due:
            await change_warning(self.db, self.bus, change, sender=self.sender, now=self.now(), exercise=exercise,
                                 test=test)
        return len(due)

    async def on_stored(self, event: Event) -> None:
        """Judge a stored batch. Raises (so the bus redelivers it, unacknowledged) while a change it
        or an earlier batch caused is not recorded yet because the DB is unreachable: the engine has
        moved on, so the change waits here, in order, and is recorded first thing next time."""
        await self._ready.wait()
        unplaced = {o["datastream_id"] for o in event.data["observations"]
                    if self._unplaced(o["datastream_id"]) and self.engine.watches(o["datastream_id"])}
        if unplaced:
            await anyio.to_thread.run_sync(self.place_unplaced, unplaced)
        watched = self.engine.watches
        readings = [(o["datastream_id"], datetime.fromisoformat(o["phenomenon_time"]), o["result"], o["quality"],
                     datetime.fromisoformat(o["result_time"]) if o.get("result_time") else None)
                    for o in event.data["observations"] if o["quality"] == "good" and watched(o["datastream_id"])]
        self._unrecorded += self.engine.observe_many(readings)
        async with self._recording:
            while self._unrecorded:
                change = self._unrecorded[0]
                try:
                    await change_warning(self.db, self.bus, change, sender=self.sender, now=self.now())
                except OperationalError as exc:  # the DB is away: keep it, and the event unacknowledged
                    raise RuntimeError(f"{len(self._unrecorded)} warning changes wait for the DB") from exc
                except Exception:
                    log.exception("could not record or announce %s of %s in %s", change.kind, change.hazard,
                                  change.area)
                del self._unrecorded[0]


@dataclass(slots=True)
class _History:
    """What a new leader reads back before it judges: readings to replay, oldest first; when they
    start; (hazard, area) → the time of the last change recorded there, and → the warning in force
    (its stream and level; None once lifted)."""

    readings: list[tuple]
    since: datetime
    settled: dict[tuple[str, str], datetime]
    in_force: dict[tuple[str, str], tuple[int | None, str | None] | None]


def practice_of(warning: dict[str, Any], latest_alert: dict[str, Any] | None) -> tuple[bool, bool]:
    """Whether a warning's next message is a drill's, and whether a test's: a warning kept from the
    public (``exercise``) is a test when its messages are Test, a drill otherwise."""
    test = bool(warning["exercise"]) and latest_alert is not None and latest_alert["status"] == "Test"
    return bool(warning["exercise"]) and not test, test


def _settled(alerts: list[dict[str, Any]]) -> dict[tuple[str, str], datetime]:
    """(hazard, area) → the time of the latest change recorded there, read from the identifiers."""
    settled: dict[tuple[str, str], datetime] = {}
    for a in alerts:
        at = identifier_time(a["identifier"])
        key = (a["hazard"], a["area_key"])
        if at is not None and (key not in settled or at > settled[key]):
            settled[key] = at
    return settled


def _second(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


@dataclass(frozen=True, slots=True)
class Recorded:
    """A warning's change as stored: the data of the two events its owner publishes.

    ``new``: this call stored it; False when the same change (its alert's identifier) was stored
    before, by this engine or another one, and nothing was written. ``more``: the alerts of the
    other pieces of an area in pieces far apart (``alerts.compose.contiguous_pieces``), if any.
    """

    warning: WarningChanged
    alert: AlertSent
    new: bool = True
    more: tuple[AlertSent, ...] = ()


async def change_warning(db: Database, bus: Bus, change: Change, **options: Any) -> AlertSent:
    """Issue, update or cancel a warning: record it with its CAP alert (:func:`record_change`,
    in a worker thread), then publish ``warning.changed`` and ``alert.sent``. The one way every
    path changes a warning, so other situation rooms, the care service and the channels hear of
    it at once whoever made it. Returns the ``alert.sent`` data.

    A change found already recorded is not announced again: whoever recorded it announced it
    (and its webhooks were planned with it, see ``alerts.publish``)."""
    recorded = await anyio.to_thread.run_sync(partial(record_change, db, change, **options))
    if recorded.new:
        await _publish(bus, recorded)
    return recorded.alert


async def _publish(bus: Bus, recorded: Recorded) -> None:
    await bus.publish(event(WARNING_CHANGED, recorded.warning))
    for alert in (recorded.alert, *recorded.more):
        await bus.publish(event(ALERT_SENT, alert))


def record_change(
    db: Database, change: Change, *, sender: str, now: datetime, exercise: bool = False, test: bool = False,
    languages: list[str] | None = None, expires: datetime | None = None, created_by: str = "warnings-engine",
) -> Recorded:
    """Store a warning's new state and its CAP alert in one transaction; publishes nothing (see
    :func:`change_warning`).

    Idempotent: when the alert this change would get (its identifier) is stored already, the stored
    one is returned and nothing changes. Two engines recording the same change at once: the unique
    identifier refuses the second alert, its whole transaction (the warning row too) rolls back,
    and it returns the first one's, read in a fresh transaction. A ``test`` (CAP status Test) is kept
    out of the public like a drill."""
    identifier = make_identifier(change, exercise, test)
    try:
        return _already(db, change, identifier, exercise or test) or _record(
            db, change, identifier, sender=sender, now=now, exercise=exercise, test=test, languages=languages,
            expires=expires, created_by=created_by)
    except IntegrityError:
        found = _already(db, change, identifier, exercise or test)
        if found is None:  # another key refused it: not a duplicate of this change
            raise
        return found


def _already(db: Database, change: Change, identifier: str, exercise: bool) -> Recorded | None:
    """The change as recorded before, if its alert exists."""
    with db.connect() as conn:
        alert = store.get_alert_by_identifier(conn, identifier)
        if alert is None:
            return None
        warning = store.get_warning(conn, alert["warning_id"]) if alert["warning_id"] else None
    area_code = warning["area_code"] if warning else None
    sent = alert_sent(alert)
    return Recorded(_changed(change, alert["warning_id"], area_code, exercise, sent), sent, new=False)


def _record(db: Database, change: Change, identifier: str, *, sender: str, now: datetime, exercise: bool,
            test: bool, languages: list[str] | None, expires: datetime | None, created_by: str) -> Recorded:
    with db.begin() as conn:
        facts = area_facts(conn, change.area, change.hazard, change.datastream_id)
        warning = store.active_warning(conn, change.hazard, change.area, practice=exercise or test)
        if warning is None and change.kind != "cancel":
            warning_id = store.open_warning(conn, _warning_row(change, facts, now, exercise or test))
        elif warning is not None:
            warning_id = warning["id"]
            store.change_warning(conn, warning_id, _warning_update(change, now) | (
                {"unplaced": facts.unplaced, "area_code": facts.area_code} if change.kind != "cancel" else {}))
        else:
            raise LookupError(f"cancel of {change.hazard} in {change.area} with no warning in force")
        alert, *more = alerts_for_change(conn, change, facts, warning_id, identifier, sender=sender, now=now,
                                         exercise=exercise, test=test, languages=languages, expires=expires,
                                         created_by=created_by)
        if facts.unplaced:
            _keep_unplaced(conn, change, facts, warning_id, alert)
    return Recorded(_changed(change, warning_id, facts.area_code, exercise or test, alert), alert, more=tuple(more))


def _keep_unplaced(conn, change: Change, facts: AreaFacts, warning_id: int, alert: AlertSent) -> None:
    """A change no district holds, in the dead letters with the reason: someone must place its sensor."""
    log.warning("%s (warning %d, %s of %s, kept)", facts.unplaced_reason, warning_id, change.kind, change.hazard)
    deadletters.keep(conn, f"{deadletters.WARNING_SOURCE}{change.area}", facts.unplaced_reason, orjson.dumps({
        "warning_id": warning_id, "kind": change.kind, "hazard": change.hazard, "area": change.area,
        "level": change.criterion.level if change.criterion else None, "value": change.value,
        "at": change.at.isoformat(), "datastream_id": change.datastream_id, "alert": alert["identifier"],
        "unplaced": facts.unplaced}))


def _warning_row(change: Change, facts: AreaFacts, now: datetime, exercise: bool) -> dict[str, Any]:
    c = change.criterion
    return {"hazard": change.hazard, "area_key": change.area, "area_code": facts.area_code, "level": c.level,
            "crisis_level": c.crisis_level, "value": change.value, "unit": c.unit, "criterion": _rule(c),
            "datastream_id": change.datastream_id, "exercise": exercise, "issued_at": change.at,
            "updated_at": now, "unplaced": facts.unplaced}


def _warning_update(change: Change, now: datetime) -> dict[str, Any]:
    if change.kind == "cancel":
        return {"status": "cancelled", "cancelled_at": change.at, "updated_at": now, "value": change.value}
    c = change.criterion
    # A new level is news: the operator who acknowledged the old one must see this one too.
    return {"level": c.level, "crisis_level": c.crisis_level, "value": change.value, "unit": c.unit,
            "criterion": _rule(c), "updated_at": now, "acknowledged_at": None, "acknowledged_by": None}


def _rule(c: Criterion) -> dict[str, Any]:
    return {"property": c.property, "operator": c.operator, "value": c.value, "unit": c.unit,
            "window": str(c.window), "aggregate": c.aggregate, "persistence": str(c.persistence),
            "source": c.source}


def _changed(change: Change, warning_id: int, area_code: str | None, exercise: bool,
             alert: AlertSent) -> WarningChanged:
    return {"warning_id": warning_id, "kind": change.kind, "hazard": change.hazard, "area": change.area,
            "area_code": area_code, "level": change.criterion.level if change.criterion else None,
            "crisis_level": change.criterion.crisis_level if change.criterion else None,
            "value": change.value, "at": change.at.isoformat(), "exercise": exercise,
            "alert": alert["identifier"], "alert_id": alert["id"]}
