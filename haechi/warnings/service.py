"""The warnings service: stored observations in, warnings and CAP alerts out, over the bus.

Listens to ``observation.stored``; feeds QC-good readings to the pure engine; for each lifecycle
change it records the warning (one active per hazard × area), composes the CAP alert with its
target area and the people inside, stores it, and publishes ``warning.changed`` and
``alert.sent`` for the channels. A failure to alert is logged and never stops ingest.

Every path that changes a warning goes through :func:`change_warning`: the engine, the alert
refresher, an operator by hand (``manual.py``, over the API or the CLI) and drills, so the owner
publishes the same two events whoever made the change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import anyio.to_thread
from sqlalchemy import Engine as Database
from sqlalchemy import select

from haechi.alerts.publish import alert_for_change
from haechi.cities.targeting import AreaFacts, area_facts
from haechi.core.clock import utcnow
from haechi.core.events import Bus, Event
from haechi.model.catalogue import catalogue
from haechi.model.events import ALERT_SENT, OBSERVATION_STORED, WARNING_CHANGED, AlertSent, WarningChanged, event
from haechi.model.hazards import Change, Criterion
from haechi.store import warnings as store
from haechi.store.schema import datastreams, facilities, observed_properties, places, things

from .criteria import load_criteria
from .engine import RuleEngine, StreamInfo

log = logging.getLogger(__name__)
#: An alert of a warning still in force is re-announced this long before it expires.
REFRESH_BEFORE = timedelta(minutes=15)


def describe_streams(conn) -> dict[int, StreamInfo]:
    """Every datastream as the engine needs it: property, district, station, facility type."""
    ds, op, th, pl, fa = datastreams.c, observed_properties.c, things.c, places.c, facilities.c
    query = (
        select(ds.id, op.code, ds.area_code, ds.thing_id, pl.kind, pl.ref, fa.facility_type, fa.safety_grade)
        .join(observed_properties, op.id == ds.observed_property_id)
        .join(things, th.id == ds.thing_id)
        .outerjoin(places, pl.id == th.place_id)
        .outerjoin(facilities, fa.place_id == pl.id)
    )
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

    def start(self) -> None:
        self.restore()
        self._unsubscribe = self.bus.subscribe(OBSERVATION_STORED, self.on_stored)

    def restore(self) -> int:
        """Warnings in force survive a restart: the engine takes them back, ready to update or lift."""
        with self.db.connect() as conn:
            active = [w for w in store.list_warnings(conn, limit=100_000) if w["datastream_id"] and not w["exercise"]]
        return sum(self.engine.restore(w["datastream_id"], w["hazard"], w["level"]) for w in active)

    def stop(self) -> None:
        if self._unsubscribe:
            self._unsubscribe()

    def _describe(self, stream_id: int) -> StreamInfo | None:
        if stream_id not in self.streams:  # a datastream made since: reload the map once
            with self.db.connect() as conn:
                self.streams = describe_streams(conn)
        return self.streams.get(stream_id)

    def due_for_refresh(self, now: datetime) -> list[tuple[Change, bool]]:
        """Warnings still in force whose latest alert expires within ``REFRESH_BEFORE``: they get an Update."""
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
                                       w["datastream_id"]), w["exercise"]))
        return due

    async def refresh(self) -> int:
        """Re-announce warnings in force before their alerts expire, so no alert lapses silently."""
        due = await anyio.to_thread.run_sync(self.due_for_refresh, self.now())
        for change, exercise in due:
            await change_warning(self.db, self.bus, change, sender=self.sender, now=self.now(), exercise=exercise)
        return len(due)

    async def on_stored(self, event: Event) -> None:
        watched = self.engine.watches
        readings = [(o["datastream_id"], datetime.fromisoformat(o["phenomenon_time"]), o["result"], o["quality"],
                     datetime.fromisoformat(o["result_time"]) if o.get("result_time") else None)
                    for o in event.data["observations"] if o["quality"] == "good" and watched(o["datastream_id"])]
        changes = self.engine.observe_many(readings)
        for change in changes:
            try:
                await change_warning(self.db, self.bus, change, sender=self.sender, now=self.now())
            except Exception:
                log.exception("could not record or announce %s of %s in %s", change.kind, change.hazard, change.area)


@dataclass(frozen=True, slots=True)
class Recorded:
    """A warning's change as stored: the data of the two events its owner publishes."""

    warning: WarningChanged
    alert: AlertSent


async def change_warning(db: Database, bus: Bus, change: Change, **options: Any) -> AlertSent:
    """Issue, update or cancel a warning: record it with its CAP alert (:func:`record_change`,
    in a worker thread), then publish ``warning.changed`` and ``alert.sent``. The one way every
    path changes a warning, so other situation rooms, the care service and the channels hear of
    it at once whoever made it. Returns the ``alert.sent`` data."""
    recorded = await anyio.to_thread.run_sync(partial(record_change, db, change, **options))
    await bus.publish(event(WARNING_CHANGED, recorded.warning))
    await bus.publish(event(ALERT_SENT, recorded.alert))
    return recorded.alert


def record_change(
    db: Database, change: Change, *, sender: str, now: datetime, exercise: bool = False,
    languages: list[str] | None = None, expires: datetime | None = None, created_by: str = "warnings-engine",
) -> Recorded:
    """Store a warning's new state and its CAP alert in one transaction; publishes nothing (see
    :func:`change_warning`)."""
    with db.begin() as conn:
        facts = area_facts(conn, change.area, change.hazard, change.datastream_id)
        warning = store.active_warning(conn, change.hazard, change.area)
        if warning is None and change.kind != "cancel":
            warning_id = store.open_warning(conn, _warning_row(change, facts, now, exercise))
        elif warning is not None:
            warning_id = warning["id"]
            store.change_warning(conn, warning_id, _warning_update(change, now))
        else:
            raise LookupError(f"cancel of {change.hazard} in {change.area} with no warning in force")
        previous = store.latest_alert_of(conn, warning_id)
        alert = alert_for_change(conn, change, facts, warning_id, previous, sender=sender, now=now,
                                 exercise=exercise, languages=languages, expires=expires, created_by=created_by)
    return Recorded(_changed(change, warning_id, facts, exercise, alert), alert)


def _warning_row(change: Change, facts: AreaFacts, now: datetime, exercise: bool) -> dict[str, Any]:
    c = change.criterion
    return {"hazard": change.hazard, "area_key": change.area, "area_code": facts.area_code, "level": c.level,
            "crisis_level": c.crisis_level, "value": change.value, "unit": c.unit, "criterion": _rule(c),
            "datastream_id": change.datastream_id, "exercise": exercise, "issued_at": change.at,
            "updated_at": now}


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


def _changed(change: Change, warning_id: int, facts: AreaFacts, exercise: bool, alert: AlertSent) -> WarningChanged:
    return {"warning_id": warning_id, "kind": change.kind, "hazard": change.hazard, "area": change.area,
            "area_code": facts.area_code, "level": change.criterion.level if change.criterion else None,
            "crisis_level": change.criterion.crisis_level if change.criterion else None,
            "value": change.value, "at": change.at.isoformat(), "exercise": exercise,
            "alert": alert["identifier"], "alert_id": alert["id"]}
