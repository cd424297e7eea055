"""The care flow: device reports in, consent checked, positions stored, rules evaluated, guardians alerted.

``CareService`` owns the in-memory geofence and trip state; its database work runs in a worker
thread under one lock, so state changes happen in report order. Alerts are stored in
``care_alerts`` first, then announced: a ``care.alert`` event on the bus carries only the alert's
id, kind and time (the bus is relayed to public streams, so no personal data travels on it), and
each guardian's webhook gets the message rendered for them (language, needs) with the position,
if the webhook policy lets it go there (``haechi/alerts/egress.py``); a refusal is logged with its
reason in the ward's access log.

Guardian notices go through an outbox: each alert's pending ``care_deliveries`` (one per guardian
with a webhook) are written in the alert's own transaction, and each is claimed with a lease
before it is sent, so whoever delivers — this process at once, or the next engine leader's sweep
(:meth:`CareService.resume`) after a failover — each guardian gets each alert once.

A service that starts (a new leader) rebuilds its state from the store first (:meth:`load`): the
recent positions replayed through the geofence and the active trips, and what was already alerted
read back from the stored alerts, so a ward who left a zone before the failover raises no second
"left" alert, and one who leaves during it raises exactly one.

Reports come from the care devices' MQTT consumer beside this service, from the HTTP route of this
process when it runs the engine (the embedded default), and, in a cluster, from the API replicas
that took them over HTTP: a ``care.reports`` event each, consumed durably here and acknowledged
once stored, each event stored once however often it is delivered. Zones, trips and consent changed
through an API replica come as ``care.changed`` events, also durable: the ward is reloaded from the
store (:meth:`CareService.reload_ward`), which the change was committed to before the event left.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import numpy as np
import orjson
from shapely.geometry import shape
from sqlalchemy import Engine

from haechi.core.clock import KST, utcnow
from haechi.core.egress import GuardedTransport, RefusedTarget, WebhookPolicy
from haechi.core.errors import Conflict, InvalidInput
from haechi.core.events import Bus, Event
from haechi.model.events import CARE_ALERT, CARE_CHANGED, CARE_REPORTS, WARNING_CHANGED
from haechi.model.geo import TO_DEGREES, TO_METRES, transform
from haechi.store import deadletters
from haechi.store.incidents import add_reported, get_incident

from . import repository, welfare
from .geofence import Geofence, Zone, parse_schedule
from .hazards import active_warnings, hazard_areas
from .messages import render
from .reports import Activity, Position, Refused, Sos, from_wire
from .rules import rules, welfare_rules
from .trips import TripRules, TripWatch, check_position, is_overdue, route_line

log = logging.getLogger(__name__)

#: Kinds that go to the CCTV safety center (CCTV 안전센터) with the live position.
CCTV_KINDS = frozenset({"deviation", "long_stop", "overdue", "sos"})
TRIP_KINDS = CCTV_KINDS | {"arrived"}
#: Wards whose safe zones and stops are watched (walkers are watched through their trips).
GEOFENCED = frozenset({"child", "dementia", "elderly_alone"})
HAZARD_KINDS = frozenset({"hazard", "school_hazard"})
#: Extra time past a webhook's timeout before a claimed notice may be taken over by another process.
CLAIM_MARGIN = timedelta(seconds=30)
#: Positions replayed at start beyond the dwell time: a stop is judged from its first position, so
#: the replay must reach back past any stop still short of the dwell time; 10 minutes covers
#: devices reporting every few minutes (the rules' dwell radius assumes one every 30 s).
REBUILD_MARGIN = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class Sent:
    """One guardian's webhook delivery: whether it was accepted, and why not."""

    ok: bool
    error: str | None = None
    refused: bool = False  # Haechi would not send there: nothing, not even the position, left
    status: int | None = None  # the receiver's answer, when one came


@dataclass
class Outcome:
    positions: int = 0
    activity: int = 0
    refused: int = 0
    alerts: list[dict[str, Any]] = field(default_factory=list)


class CareService:
    def __init__(self, engine: Engine, bus: Bus, *, retention_h: float = 24.0,
                 webhook_timeout_s: float = 5.0, webhook_policy: WebhookPolicy | None = None) -> None:
        r = rules()
        self.engine, self.bus = engine, bus
        self.retention = timedelta(hours=retention_h)
        self.max_future_s = float(r["positions"]["max_future_s"])
        self.geofence = Geofence(dwell_radius_m=r["dwell"]["radius_m"], dwell_s=r["dwell"]["minutes"] * 60)
        t = r["trip"]
        self.trip_rules = TripRules(t["route_buffer_m"], t["stop_minutes"] * 60,
                                    t["overdue_grace_minutes"] * 60, t["arrival_radius_m"])
        self.trips: dict[int, TripWatch] = {}  # by ward id
        self.webhook_timeout_s = webhook_timeout_s
        self.webhook_policy = webhook_policy or WebhookPolicy()
        self._hazard_cache: dict = {}
        self._school_alerted: set[tuple[int, int]] = set()
        self._lock = asyncio.Lock()
        self._unsubscribe: list = []
        self._lease = timedelta(seconds=webhook_timeout_s) + CLAIM_MARGIN
        self._delivering: dict[int, asyncio.Task] = {}  # by care alert id
        # Devices and wards never change kind or owner once registered (no such endpoint), so the
        # hot path keeps them in memory; consent is always read from the store (withdrawal is at once).
        self._devices: dict[str, dict[str, Any]] = {}
        self._wards: dict[int, dict[str, Any]] = {}

    # ── life cycle ──

    async def start(self) -> None:
        """Rebuild from the store, listen for warnings and for the reports and changes API replicas
        took, and deliver the notices left pending."""
        await asyncio.to_thread(self.load)
        self._unsubscribe = [self.bus.subscribe(WARNING_CHANGED, self._on_warning),
                             self.bus.subscribe(CARE_REPORTS, self._on_reports),
                             self.bus.subscribe(CARE_CHANGED, self._on_changed)]
        await self.resume()

    async def stop(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
        for task in list(self._delivering.values()):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, self.webhook_timeout_s)

    def load(self, now: datetime | None = None) -> None:
        """Zones, trips and hazards from the store, and the state of a service that never stopped."""
        now = now or utcnow()
        with self.engine.begin() as conn:
            self._load_zones(conn)
            self.trips = {}
            for trip in repository.active_trips(conn):
                self._watch_trip(trip)
            self._rebuild(conn, now)
            self._load_hazards(conn)
            self._remember_alerted(conn, now)

    def _rebuild(self, conn, now: datetime) -> None:
        """Replay the stored positions through the geofence and the trips, discarding what they find
        (it was found, and alerted, when they came in). Each ward from the start of its window: the
        last dwell time (more if its last dwell alert is older: the stop it was for may go on), or
        its active trip's start. Hazards are left out: who was alerted of which comes from the alerts."""
        dwell = timedelta(seconds=self.geofence.dwell_s) + REBUILD_MARGIN
        since = now - dwell
        starts = {r["ward_id"]: r["at"] - dwell for r in repository.alerts_since(conn, ["dwell"], now - self.retention)}
        starts |= {w: min(starts.get(w, since), t.started_at) for w, t in self.trips.items() if t.started_at}
        positions = repository.positions_since(conn, since)
        for ward_id, start in starts.items():
            if start < since:
                positions += repository.positions_since(conn, start, ward_id=ward_id, until=since)
        positions.sort(key=lambda p: p[1])
        self._replay_geofence(positions)
        for ward_id, at, lon, lat in positions:
            watch = self.trips.get(ward_id)
            if watch is not None and watch.started_at is not None and at >= watch.started_at:
                check_position(watch, self.trip_rules, lon, lat, at)
        log.info("care state rebuilt from %d stored positions", len(positions))

    def _replay_geofence(self, positions: list[tuple[int, datetime, float, float]]) -> None:
        """Positions through the geofence a minute at a time, as they came in (schedules are by the minute)."""
        hazards, self.geofence.hazards = self.geofence.hazards, []
        try:
            for _, batch in itertools.groupby(positions, key=lambda p: int(p[1].timestamp() // 60)):
                wards, at, lon, lat = zip(*batch, strict=True)
                self.geofence.check(np.array(wards), np.array(lon), np.array(lat),
                                    np.array([t.timestamp() for t in at]))
        finally:
            self.geofence.hazards = hazards

    def _remember_alerted(self, conn, now: datetime) -> None:
        """What was already alerted, from the stored alerts: hazards entered and near school zones
        (per warning in force), and overdue trips."""
        live = {h.warning_id for h in self.geofence.hazards}
        oldest = min((w["issued_at"] for w in active_warnings(conn)), default=now)
        trips = {t.trip_id: t for t in self.trips.values()}
        for alert in repository.alerts_since(conn, ["hazard", "school_hazard", "overdue"], min(
                [oldest, *(t.started_at or oldest for t in trips.values())])):
            detail = alert["detail"] or {}
            if alert["kind"] == "overdue" and detail.get("trip_id") in trips:
                trips[detail["trip_id"]].overdue_alerted = True
            elif alert["kind"] == "hazard" and detail.get("warning_id") in live:
                self.geofence.alerted(alert["ward_id"], detail["warning_id"])
            elif alert["kind"] == "school_hazard" and detail.get("warning_id") in live:
                self._school_alerted.add((alert["ward_id"], detail["warning_id"]))

    async def reload_zones(self) -> None:
        async with self._lock:
            await asyncio.to_thread(self._in_tx, self._load_zones)

    def _in_tx(self, fn, *args):
        with self.engine.begin() as conn:
            return fn(conn, *args)

    def _load_zones(self, conn) -> None:
        self.geofence.set_zones([
            Zone(z["id"], z["ward_id"], z["kind"], z["name"], shape(z["geometry"]), parse_schedule(z["schedule"]))
            for z in repository.zones(conn)])

    def _load_hazards(self, conn) -> None:
        self.geofence.set_hazards(hazard_areas(conn, self._hazard_cache))

    async def _on_warning(self, _event: Event) -> None:
        async with self._lock:
            await asyncio.to_thread(self._in_tx, self._load_hazards)

    def _watch_trip(self, trip: dict[str, Any]) -> None:
        self.trips[trip["ward_id"]] = TripWatch(trip["id"], trip["ward_id"], route_line(trip["route"]),
                                                trip["expected_at"], trip.get("started_at"))

    async def add_trip(self, trip: dict[str, Any]) -> None:
        async with self._lock:
            self._watch_trip(trip)

    async def end_trip(self, ward_id: int) -> None:
        async with self._lock:
            self.trips.pop(ward_id, None)

    async def forget(self, ward_id: int) -> None:
        """Consent withdrawn: drop what is remembered of the ward in memory too."""
        async with self._lock:
            self.geofence.forget(ward_id)
            self.trips.pop(ward_id, None)

    async def reload_ward(self, ward_id: int) -> None:
        """The ward's zones, trip and consent as the store has them now: what an API replica changed
        (``care.changed``). Twice is harmless: a trip already watched keeps its state."""
        async with self._lock:
            await asyncio.to_thread(self._in_tx, self._reload_ward, ward_id)

    def _reload_ward(self, conn, ward_id: int) -> None:
        self._load_zones(conn)  # all wards' zones: the geofence keeps them in one array
        if ward_id not in repository.consenting(conn, [ward_id], utcnow()):  # withdrawn: forgotten, as here
            self.geofence.forget(ward_id)
            self.trips.pop(ward_id, None)
            return
        trip = next((t for t in repository.active_trips(conn) if t["ward_id"] == ward_id), None)
        watched = self.trips.get(ward_id)
        if trip is None:
            self.trips.pop(ward_id, None)
        elif watched is None or watched.trip_id != trip["id"]:
            self._watch_trip(trip)

    async def _on_changed(self, event: Event) -> None:
        await self.reload_ward(event.data["ward_id"])
        log.info("care ward %d reloaded: its %s changed through an API replica",
                 event.data["ward_id"], event.data["what"])

    # ── reports from devices (MQTT and HTTP) ──

    async def report(self, items: Sequence[Position | Activity | Sos | Refused], source: str,
                     now: datetime | None = None, token_id: int | None = None, once: str | None = None) -> Outcome:
        """Store and evaluate reports. ``token_id``: the HTTP device token they came with (None over
        MQTT, where the broker's own credentials decide who may publish on a device's topic).
        ``once``: the id of the event that brought them; stored already, nothing is done again."""
        return await self.report_groups([(items, source)], now, token_id, once)

    async def report_groups(self, groups: Sequence[tuple[Sequence[Position | Activity | Sos | Refused], str]],
                            now: datetime | None = None, token_id: int | None = None,
                            once: str | None = None) -> Outcome:
        """Reports from several sources (each names the dead letters of its refusals) in one
        transaction: a batch is stored whole or not at all, so a redelivered batch is never half
        stored twice."""
        async with self._lock:
            outcome = await asyncio.to_thread(self._handle, [(list(i), s) for i, s in groups], now or utcnow(),
                                              token_id, once)
        await self.announce(outcome.alerts)
        return outcome

    async def _on_reports(self, event: Event) -> None:
        """Reports an API replica took over HTTP (``care.reports``), judged as its route would have
        judged them here: the same dead letters, device binding and alerts. The bus acknowledges the
        event once this returns, after the commit; one delivered again is skipped in the store."""
        data = event.data
        outcome = await self.report([from_wire(r) for r in data["reports"]], data["source"],
                                    datetime.fromisoformat(data["received_at"]), data["token_id"], once=data["id"])
        log.debug("care reports %s from an API replica: %d positions, %d activity, %d refused, %d alerts",
                  data["id"], outcome.positions, outcome.activity, outcome.refused, len(outcome.alerts))

    def _handle(self, groups, now: datetime, token_id: int | None = None, once: str | None = None) -> Outcome:
        outcome = Outcome()
        with self.engine.begin() as conn:
            if once is not None and not repository.first_handling(conn, once, now):
                log.info("care reports %s were stored already (delivered again): skipped", once)
                return outcome
            accepted = [pair for items, source in groups
                        for pair in self._accept(conn, items, source, now, outcome, token_id)]
            positions = [(i, d) for i, d in accepted if isinstance(i, Position)]
            activity = [(i, d) for i, d in accepted if isinstance(i, Activity)]
            outcome.positions = repository.save_positions(conn, [
                {"ward_id": d["ward_id"], "device_id": d["id"], "at": i.at, "received_at": now,
                 "lon": i.lon, "lat": i.lat, "accuracy_m": i.accuracy_m} for i, d in positions])
            outcome.activity = repository.save_activity(conn, [
                {"ward_id": d["ward_id"], "device_id": d["id"], "at": i.at, "kind": i.kind or d["kind"]}
                for i, d in activity])
            repository.answer_open_checks(conn, {d["ward_id"] for _, d in activity}, now, "activity")
            outcome.alerts = self._raise_many(conn, self._evaluate(conn, positions, accepted, now))
        return outcome

    def _accept(self, conn, items, source: str, now: datetime, outcome: Outcome,
                token_id: int | None = None) -> list[tuple[Any, dict]]:
        """Reports from known devices of consenting wards; the rest kept as dead letters with the reason.

        Over HTTP a device is bound to the first token it reports with (trust on first use), so
        another device's token cannot speak for it (a fake SOS, a fake arrival home)."""
        for r in items:
            if isinstance(r, Refused):
                deadletters.keep(conn, source, r.reason, r.payload)
                outcome.refused += 1
        rest = [i for i in items if not isinstance(i, Refused)]
        devices = self._known_devices(conn, {i.device for i in rest})
        consenting = repository.consenting(conn, {d["ward_id"] for d in devices.values()}, now)
        accepted = []
        for item in rest:
            device = devices.get(item.device)
            reason = None
            if device is None:
                reason = f"device: unknown device {item.device!r}; register it to a ward first"
            elif (device["kind"] == "tracker") == isinstance(item, Activity):  # trackers: positions, SOS
                reason = f"device: {item.device!r} is a {device['kind']} device and cannot send this report"
            elif token_id is not None and device.get("token_id") not in (None, token_id):
                reason = f"device: {item.device!r} reports with another token; this token may not speak for it"
            elif device["ward_id"] not in consenting:
                reason = "no consent"  # withdrawn, expired or never given: nothing is stored
            if reason:
                deadletters.keep(conn, source, reason, _without_position(item))
                outcome.refused += 1
            else:
                if token_id is not None and device.get("token_id") is None:
                    repository.bind_device(conn, device["id"], token_id)
                    device["token_id"] = token_id
                accepted.append((item, device))
        return accepted

    def _evaluate(self, conn, positions, accepted, now: datetime):
        """(kind, ward id, at, lon, lat, detail) of every alert these reports raise."""
        ward_ids = {d["ward_id"] for _, d in accepted}
        info = self._known_wards(conn, ward_ids)
        raised = []
        if positions:
            arrays = np.array([(d["ward_id"], i.lon, i.lat, i.at.timestamp()) for i, d in positions]).T
            for f in self.geofence.check(arrays[0].astype(np.int64), arrays[1], arrays[2], arrays[3]):
                if f.kind == "hazard" or info[f.ward_id]["kind"] in GEOFENCED:
                    raised.append((f.kind, f.ward_id, f.at, f.lon, f.lat, f.detail))
        for item, device in sorted(positions, key=lambda p: p[0].at):
            raised += self._trip_alerts(conn, device["ward_id"], item.lon, item.lat, item.at)
        for item, device in accepted:
            if isinstance(item, Sos):
                lon, lat = item.lon, item.lat
                if lon is None:
                    last = repository.positions(conn, device["ward_id"], limit=1)
                    lon, lat = (last[0]["lon"], last[0]["lat"]) if last else (None, None)
                trip = self.trips.get(device["ward_id"])
                raised.append(("sos", device["ward_id"], item.at, lon, lat,
                               {"trip_id": trip.trip_id if trip else None}))
        return raised

    def _trip_alerts(self, conn, ward_id: int, lon: float, lat: float, at: datetime):
        watch = self.trips.get(ward_id)
        if watch is None:
            return []
        found = []
        for kind, detail in check_position(watch, self.trip_rules, lon, lat, at):
            found.append((kind, ward_id, at, lon, lat, detail | {"trip_id": watch.trip_id}))
            if kind == "arrived":
                repository.end_trip(conn, watch.trip_id, "arrived", at)
                del self.trips[ward_id]
                break
        return found

    def _raise(self, conn, ward_id: int, kind: str, at: datetime, lon, lat, detail: dict[str, Any],
               escalate_at: datetime | None = None) -> dict[str, Any]:
        """Store one alert with the recipients it goes to."""
        [alert] = self._raise_many(conn, [(kind, ward_id, at, lon, lat, detail)], escalate_at)
        return alert

    def _raise_many(self, conn, raised, escalate_at: datetime | None = None) -> list[dict[str, Any]]:
        """Store alerts (one insert), each with its recipients; delivery ``none`` when no webhook waits."""
        if not raised:
            return []
        ids = {r[1] for r in raised}
        wards, guardians = self._known_wards(conn, ids), repository.guardians_of(conn, ids)
        rows, hooks = [], []
        for kind, ward_id, at, lon, lat, detail in raised:
            trip = repository.get_trip(conn, detail["trip_id"]) if detail.get("trip_id") else None
            chosen = set(trip["contacts"] or []) if trip and kind in TRIP_KINDS else set()
            to_guardians = [g for g in guardians.get(ward_id, [])
                            if (not chosen or g["id"] in chosen) and _wants(g, kind, detail)]
            to = {"guardians": [g["id"] for g in to_guardians], "centers": ["cctv"] if kind in CCTV_KINDS else [],
                  "district": wards[ward_id]["area_code"] if kind == "welfare_escalated" else None}
            rows.append({"ward_id": ward_id, "kind": kind, "at": at, "lon": lon, "lat": lat,
                         "detail": detail | {"to": to}, "escalate_at": escalate_at,
                         "delivery": None if any(g["webhook_url"] for g in to_guardians) else "none"})
            hooks.append([g["id"] for g in to_guardians if g["webhook_url"]])
        stored = repository.add_alerts(conn, rows)
        repository.add_deliveries(conn, [(a["id"], g) for a, gs in zip(stored, hooks, strict=True) for g in gs],
                                  utcnow())  # the outbox, in the alerts' transaction
        return stored

    def _known_devices(self, conn, refs: set[str]) -> dict[str, dict[str, Any]]:
        if missing := refs - self._devices.keys():
            self._devices.update(repository.devices_by_ref(conn, missing))
        return {r: self._devices[r] for r in refs if r in self._devices}

    def _known_wards(self, conn, ids: set[int]) -> dict[int, dict[str, Any]]:
        if missing := set(ids) - self._wards.keys():
            self._wards.update(repository.wards(conn, missing))
        return {i: self._wards[i] for i in ids if i in self._wards}

    # ── announcing ──

    async def announce(self, alerts: Sequence[dict[str, Any]]) -> None:
        for alert in alerts:
            await self.bus.publish(Event(CARE_ALERT, {"alert_id": alert["id"], "kind": alert["kind"],
                                                   "at": alert["at"].isoformat()}))
            if alert["delivery"] != "none":  # a webhook among its recipients
                self._deliver_soon(alert["id"])

    async def resume(self) -> int:
        """Deliver every guardian notice due and not in hand (left pending by a process that stopped,
        or by one that died mid-attempt once its lease ran out); settle alerts whose notices are
        all done. Returns how many notices were due."""
        due = await asyncio.to_thread(self._in_tx, _due_notices, set(self._delivering), utcnow() - self.retention)
        for alert_id in due:
            self._deliver_soon(alert_id)
        return sum(len(ids) for ids in due.values())

    def _deliver_soon(self, alert_id: int) -> None:
        if alert_id in self._delivering:
            return
        task = asyncio.create_task(self._deliver(alert_id), name=f"care-webhook:{alert_id}")
        self._delivering[alert_id] = task
        task.add_done_callback(lambda _: self._delivering.pop(alert_id, None))

    async def _deliver(self, alert_id: int) -> None:
        """POST each guardian's own rendering to their webhook, each claimed first; the delivery is in
        the access log."""
        due = await asyncio.to_thread(self._in_tx, lambda conn: repository.due_deliveries(
            conn, utcnow(), alert_id=alert_id).get(alert_id, []))
        transport = GuardedTransport(self.webhook_policy)
        async with httpx.AsyncClient(timeout=self.webhook_timeout_s, transport=transport) as client:
            for delivery_id in due:
                notice = await asyncio.to_thread(self._in_tx, _claim_notice, delivery_id, self._lease)
                if notice is None:
                    continue  # another process has it
                sent = await self._post(client, notice.guardian, notice.body)
                if not sent.ok:
                    log.warning("care alert %s: webhook of guardian %s failed: %s", alert_id, notice.guardian["id"],
                                sent.error)
                await asyncio.to_thread(self._in_tx, _record_notice, notice, sent)

    async def _post(self, client: httpx.AsyncClient, guardian: dict[str, Any], body: dict[str, Any]) -> Sent:
        if not guardian["webhook_url"]:
            return Sent(False, "the guardian has no webhook any more")
        try:
            self.webhook_policy.check_url(guardian["webhook_url"])
            async with asyncio.timeout(self.webhook_timeout_s):  # within the claim's lease
                response = await client.post(guardian["webhook_url"], content=orjson.dumps(body),
                                             headers={"Content-Type": "application/json"})
        except RefusedTarget as exc:
            return Sent(False, f"refused by Haechi: {exc}", refused=True)
        except (httpx.HTTPError, TimeoutError) as exc:
            return Sent(False, f"{type(exc).__name__}: {exc}".rstrip(": "))
        ok = response.status_code < 300
        return Sent(ok, None if ok else f"HTTP {response.status_code}", status=response.status_code)

    # ── the clock: overdue trips, welfare checks, school hours ──

    async def tick(self, now: datetime | None = None) -> list[dict[str, Any]]:
        async with self._lock:
            alerts = await asyncio.to_thread(self._in_tx, self._tick, now or utcnow())
        await self.announce(alerts)
        await self.resume()  # notices another process left behind
        return alerts

    def _tick(self, conn, now: datetime) -> list[dict[str, Any]]:
        self._load_hazards(conn)
        alerts = []
        for ward_id, watch in list(self.trips.items()):
            if is_overdue(watch, self.trip_rules, now):
                last = repository.positions(conn, ward_id, limit=1)
                lon, lat = (last[0]["lon"], last[0]["lat"]) if last else (None, None)
                alerts.append(self._raise(conn, ward_id, "overdue", now, lon, lat, {"trip_id": watch.trip_id}))
        alerts += self._welfare(conn, now)
        alerts += self._school(conn, now)
        return alerts

    def _welfare(self, conn, now: datetime) -> list[dict[str, Any]]:
        w_rules = welfare_rules()
        elderly = {i: w for i, w in repository.wards(conn).items() if w["kind"] == "elderly_alone"}
        consenting = repository.consenting(conn, elderly, now)
        last = repository.last_activity(conn, consenting)
        warnings_now = active_warnings(conn)
        alerts = []
        for ward_id in sorted(consenting):
            ward = elderly[ward_id]
            here = [w["hazard"] for w in warnings_now if welfare.same_district(ward["area_code"], w["area_code"])]
            hours, tightened_by = welfare.period(w_rules, here)
            since = max(c["granted_at"] for c in repository.consents(conn, ward_id) if c["withdrawn_at"] is None)
            quiet_from = last.get(ward_id) or since
            already = repository.latest_alert_at(conn, ward_id, "welfare_check")
            if welfare.check_due(last.get(ward_id), since, now, hours) and (already is None or already < quiet_from):
                alerts.append(self._raise(conn, ward_id, "welfare_check", now, None, None, {
                    "minutes": round(hours * 60), "period_h": hours, "tightened_by": tightened_by,
                    "quiet_since": quiet_from.isoformat()},
                    escalate_at=now + timedelta(minutes=w_rules["answer_within_minutes"])))
        for check in repository.open_welfare_checks(conn):
            if check["escalate_at"] is not None and check["escalate_at"] <= now:
                repository.set_alert(conn, check["id"], status="escalated")
                alerts.append(self._raise(conn, check["ward_id"], "welfare_escalated", now, None, None,
                                          {"check_id": check["id"]}))
        return alerts

    def _school(self, conn, now: datetime) -> list[dict[str, Any]]:
        """Service 17: during school hours, a hazard near a child's school zone alerts the parents."""
        if not in_school_hours(now) or not self.geofence.hazards:
            return []
        radius = rules()["school"]["zone_radius_m"]
        children = {i for i, w in repository.wards(conn).items() if w["kind"] == "child"}
        children &= repository.consenting(conn, children, now)
        alerts = []
        for zone in self.geofence.zones:
            if zone.kind != "school" or zone.ward_id not in children:
                continue
            around = around_m(zone.geometry, radius)
            for hazard in self.geofence.hazards:
                key = (zone.ward_id, hazard.warning_id)
                if key not in self._school_alerted and around.intersects(hazard.geometry):
                    self._school_alerted.add(key)
                    alerts.append(self._raise(conn, zone.ward_id, "school_hazard", now, None, None, {
                        "zone": zone.name, "zone_id": zone.id, "hazard": hazard.hazard,
                        "level": hazard.level, "warning_id": hazard.warning_id}))
        return alerts

    # ── missing person, purge ──

    def open_missing(self, ward_id: int, actor) -> dict[str, Any]:
        """Open a missing-person incident for the 119 center at the last known position.

        The track itself stays in the care tables: while the incident is open, operators read it
        there (``/care/wards/{id}/positions``), every read is in the ward's access log, and it is
        purged with the rest. The incident carries only where to start and where to look. It is
        written through the shared incident records (``haechi.store.incidents``), as response
        opens its own; its fields are always valid ones (a known kind and center, a checked position).
        """
        with self.engine.begin() as conn:
            ward = repository.get_ward(conn, ward_id)
            linked = repository.open_incident_of(conn, ward_id)
            if linked and get_incident(conn, linked["incident_id"])["status"] != "closed":
                raise Conflict(f"ward {ward_id} already has an open missing-person incident")
            if linked:  # the last search ended: its link goes, a new one is made below
                repository.close_incidents(conn, ward_id, utcnow())
            track = repository.positions(conn, ward_id, limit=rules()["missing"]["track_points"])
            if not track:
                raise InvalidInput(f"ward {ward_id} has no known position to search from", field="path.ward_id")
            last = track[0]
            incident = add_reported(
                conn, kind="missing_person", lon=last["lon"], lat=last["lat"],
                title=f"실종 의심 / Missing: {ward['alias']} ({ward['kind']})", severity="high", center="119",
                source="care", actor=actor, detail={
                    "ward_id": ward_id, "ward_kind": ward["kind"], "last_seen_at": last["at"].isoformat(),
                    "track_points": len(track), "track": f"/api/v1/care/wards/{ward_id}/positions"})
            repository.link_incident(conn, ward_id, incident["id"], utcnow())
            return incident

    def purge(self, now: datetime | None = None) -> dict[str, int]:
        with self.engine.begin() as conn:
            return repository.purge(conn, (now or utcnow()) - self.retention)


def in_school_hours(now: datetime) -> bool:
    school = rules()["school"]
    local = now.astimezone(KST)
    hhmm = local.strftime("%H:%M")
    return local.weekday() in school["days"] and school["start"] <= hhmm < school["end"]


def around_m(geometry, metres: float):
    return transform(TO_DEGREES, transform(TO_METRES, geometry).buffer(metres))


def _wants(guardian: dict[str, Any], kind: str, detail: dict[str, Any]) -> bool:
    """Guardians may choose disaster types (services 19, 20); other alerts always go."""
    chosen = guardian.get("hazards") or []
    return kind not in HAZARD_KINDS or not chosen or detail.get("hazard") in chosen


def _without_position(item) -> str:
    kind = type(item).__name__.lower()
    return orjson.dumps({"device": item.device, "at": item.at.isoformat(), "report": kind}).decode()


def message_for(alert: dict[str, Any], ward: dict[str, Any], guardian: dict[str, Any]) -> dict[str, Any]:
    return render(alert["kind"], guardian["language"], guardian.get("needs") or [], ward=ward["alias"],
                  at=alert["at"], detail=alert["detail"])


def alert_body(alert: dict[str, Any], ward: dict[str, Any], message: dict[str, Any],
               with_position: bool) -> dict[str, Any]:
    body = {"alert_id": alert["id"], "ward_id": ward["id"], "ward": ward["alias"], "kind": alert["kind"],
            "at": alert["at"].isoformat(), "message": message,
            "detail": {k: v for k, v in alert["detail"].items() if k != "to"}}
    if with_position and alert["lon"] is not None:
        body["position"] = {"lon": alert["lon"], "lat": alert["lat"]}
    return body


@dataclass(frozen=True, slots=True)
class Notice:
    """One claimed guardian notice: its delivery row, the alert, the guardian and their message."""

    delivery: dict[str, Any]
    alert: dict[str, Any]
    guardian: dict[str, Any]
    body: dict[str, Any]


def _due_notices(conn, in_hand: set[int], since: datetime) -> dict[int, list[int]]:
    repository.settle_deliveries(conn, since=since)  # those whose last notices two processes finished at once
    return {a: ids for a, ids in repository.due_deliveries(conn, utcnow()).items() if a not in in_hand}


def _claim_notice(conn, delivery_id: int, lease: timedelta) -> Notice | None:
    delivery = repository.claim_delivery(conn, delivery_id, utcnow(), lease)
    if delivery is None:
        return None
    alert = repository.get_alert(conn, delivery["alert_id"])
    ward = repository.get_ward(conn, alert["ward_id"])
    guardian = repository.get_guardian(conn, delivery["guardian_id"])
    return Notice(delivery, alert, guardian, alert_body(alert, ward, message_for(alert, ward, guardian), True))


def _record_notice(conn, notice: Notice, sent: Sent) -> None:
    """How the notice went; in the ward's access log the position sent, or the refusal with its
    reason (the only record of why a guardian's webhook got nothing); the alert's outcome once its
    notices are all done."""
    alert, guardian = notice.alert, notice.guardian
    repository.record_delivery(conn, notice.delivery["id"], delivered=sent.ok, response_status=sent.status,
                               error=sent.error, now=utcnow())
    detail = {"alert_id": alert["id"], "guardian_id": guardian["id"], "delivered": sent.ok}
    if sent.error:
        detail["error"] = sent.error
    if sent.refused:
        repository.log_access(conn, alert["ward_id"], guardian["name"], "guardian",
                              "refused: alert sent by webhook", detail)
    elif alert["lon"] is not None:
        repository.log_access(conn, alert["ward_id"], guardian["name"], "guardian",
                              "alert position sent by webhook", detail)
    repository.settle_deliveries(conn, alert["id"])
