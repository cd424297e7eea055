"""Every capability's part, in one place: what it provides, runs, schedules, serves and commands.

A block per capability. Services start in the order of this file (the platform's bus first, so
every later service subscribes on the bus of this process) and stop in reverse. Routers mount
in this order too. Capabilities are imported inside the builders, so a process loads only what
its roles run. Roles: ``API`` serves HTTP and runs the device adapters; ``WORKER`` stores queued
readings; ``ENGINE`` runs everything stateful (see :class:`~haechi.runtime.part.Role`).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from haechi.core.events import Event
from haechi.model.events import OBSERVATION_STORED, SENSOR_SILENT

from .compose import Hooks
from .leader import competing
from .membership import HEARTBEAT_S, Membership, heartbeat
from .part import ALL, API, ENGINE, LIVE, WORKER, Context, Job, Part, Service, load

log = logging.getLogger(__name__)


# ── platform: the bus, the city's records, tokens and audit, operations ─────────────────────


def _webhook_policy(c: Context):
    from haechi.core.egress import WebhookPolicy

    return WebhookPolicy.of(c.settings.webhook_allow_http, c.settings.webhook_allowed_networks)


class NatsLink:
    """Bus mode (``HAECHI_BUS_URL``): this process's events come and go over NATS JetStream."""

    def __init__(self, context: Context) -> None:
        self.context, self.bus = context, None

    async def start(self) -> None:
        from haechi.bus.nats import EventStream, NatsBus

        settings = self.context.settings
        self.bus = self.context.bus = await NatsBus.connect(settings.bus_url, EventStream.of(settings.bus_prefix),
                                                            name=self.context.name)

    async def stop(self) -> None:
        await self.bus.close()


PLATFORM = Part(
    "platform",
    provides=(("webhook_policy", _webhook_policy),),
    # every process shows itself in the cluster table, a standby engine too (haechi cluster status)
    services=(Service("nats", lambda c: NatsLink(c) if c.settings.bus_url else None, LIVE),
              Service("membership", Membership, ALL, standby=True)),
    jobs=(Job("heartbeat", HEARTBEAT_S, heartbeat, ALL, standby=True),),
    routers=("haechi.api.areas:router", "haechi.api.places:router", "haechi.api.disasters:router",
             "haechi.api.projects:router", "haechi.api.reports:router", "haechi.api.access:router",
             "haechi.api.system:router"),
)


# ── sensing: the live state, ingest adapters, the queue's workers, silence ──────────────────


async def _keep_live_state(c: Context):
    """Warm the live state; in bus mode follow what the workers store (returns the unsubscribe)."""
    await asyncio.to_thread(c.pipeline.warm)
    if c.settings.bus_url:
        return c.bus.subscribe(OBSERVATION_STORED, _show_stored(c.pipeline), ephemeral=True)
    return None


def _show_stored(pipeline):
    async def show(event: Event) -> None:
        for o in event.data["observations"]:
            pipeline.state.show(o["datastream_id"], datetime.fromisoformat(o["phenomenon_time"]),
                                o["result"], o["quality"])

    return show


class IngestQueueLink:
    """Bus mode: adapters queue readings on JetStream, and ``haechi worker``s store them."""

    def __init__(self, context: Context) -> None:
        self.context = context

    async def start(self) -> None:
        from haechi.ingest.queue import IngestStream, open_sink

        settings = self.context.settings
        queue = IngestStream.of(settings.bus_prefix)  # this installation's, as its workers use
        self.context.sink = await open_sink(self.context.pipeline, settings.bus_url, queue)

    async def stop(self) -> None:
        await self.context.sink.close()


def _mqtt_ingest(c: Context):
    from haechi.ingest.mqtt import MqttIngest

    if not c.settings.mqtt_url:
        return None

    def interval_of(stream_id: int) -> float | None:  # from the profiles in memory: no query per reading
        profile = c.pipeline.profiles.get(stream_id)
        return profile.limits.interval_s if profile is not None and profile.limits is not None else None

    def ingest() -> MqttIngest:
        return MqttIngest(c.settings.mqtt_url, c.sink, interval_of=interval_of)

    if competing(c):  # replicas: one reads, the others stand by
        from haechi.store.cluster import MQTT_INGEST_LOCK_KEY, AdvisoryLock

        from .one_at_a_time import OneAtATime

        lock = AdvisoryLock(c.engine, f"haechi-mqtt {c.member}", key=MQTT_INGEST_LOCK_KEY)
        return OneAtATime(ingest, lock, "MQTT ingest", c.member)
    return ingest()


def _queue_worker(c: Context):
    """Bus mode: store what the ingest queue holds (``haechi.worker``, named: it composes this runtime)."""
    if not c.settings.bus_url:
        return None
    return load("haechi.worker:QueueWorker")(c.pipeline, c.settings.bus_url, **c.options.get("worker", {}))


async def _announce_silent(c: Context) -> None:
    """Publish ``sensor.silent`` once per stream that stops reporting (an operator notice)."""
    from haechi.ingest.silence import newly_silent

    pipeline = c.pipeline
    intervals = {i: p.limits.interval_s for i, p in pipeline.profiles.items() if p.limits}
    for stream_id in newly_silent(pipeline.state, intervals, c.now()):
        profile, last = pipeline.profiles.get(stream_id), pipeline.state.get(stream_id)
        await c.bus.publish(Event(SENSOR_SILENT, {
            "datastream_id": stream_id, "name": profile.name if profile else None,
            "last_time": last.phenomenon_time.isoformat() if last else None}))


SENSING = Part(
    "sensing",
    services=(
        Service("live_state", lambda c: Hooks(lambda: _keep_live_state(c)), LIVE),
        Service("ingest_queue", lambda c: IngestQueueLink(c) if c.settings.bus_url else None, API),
        Service("mqtt", _mqtt_ingest, API),
        Service("queue_worker", _queue_worker, WORKER),
    ),
    jobs=(Job("silence-watch", lambda s: s.silence_check_s, _announce_silent, ENGINE),),
    routers=("haechi.api.sensing:router", "haechi.api.sensorthings:router", "haechi.api.stations:router"),
)


# ── warnings: the engine over stored observations, alerts refreshed before they lapse ──────


def _warning_service(c: Context):
    from haechi.warnings.service import WarningService

    return WarningService(c.engine, c.bus, sender=c.settings.cap_sender, now=c.now)


async def _refresh_alerts(c: Context) -> None:
    await c["warnings"].refresh()


WARNINGS = Part(
    "warnings",
    services=(Service("warnings", _warning_service, ENGINE),),
    jobs=(Job("alert-refresh", 60.0, _refresh_alerts, ENGINE),),
    routers=("haechi.api.warnings:router",),
)


# ── alerts: by hand, public feeds, webhook subscriptions and their deliveries ───────────────


def _dispatcher(c: Context):
    from haechi.alerts.channels import AlertDispatcher

    s = c.settings
    return AlertDispatcher(c.engine, c.bus, public_url=s.public_url or f"http://{s.host}:{s.port}",
                           policy=c["webhook_policy"])


def _cap_issuer(c: Context):
    from haechi.alerts import issuer

    return issuer.configure(c.settings)  # public pages and signing key of every alert; makes the key if missing


ALERTS = Part(
    "alerts",
    provides=(("cap_issuer", _cap_issuer),),
    services=(Service("dispatcher", _dispatcher, ENGINE),),
    routers=("haechi.api.alerts_manual:router", "haechi.api.alerts_public:router",
             "haechi.api.subscriptions:router"),
)


# ── imports from existing systems (issue 7) ─────────────────────────────────────────────────

def _feed_tick(settings) -> float:
    from haechi.imports.connectors.feeds import tick_s

    return tick_s()


async def _run_due_feeds(c: Context) -> None:
    """The live public feeds (issue 16): each connector with a key, on its own interval."""
    from haechi.imports.connectors.schedule import run_due

    await run_due(c)


IMPORTS = Part("imports", routers=("haechi.api.imports:router",),
               jobs=(Job("public-feeds", _feed_tick, _run_due_feeds, ENGINE),),
               commands=(("import", "haechi.imports.commands:import_app"),
                         ("connect", "haechi.imports.connectors.commands:connect_app")))


# ── care for the vulnerable (issue 6) ───────────────────────────────────────────────────────


def _care_service(c: Context):
    from haechi.care.service import CareService

    return CareService(c.engine, c.bus, retention_h=c.settings.care_retention_h, webhook_policy=c["webhook_policy"])


def _care_started(c: Context):
    """The service the routers already use, now on this process's bus: zones, hazards and trips loaded."""
    care = c["care"]
    care.bus = c.bus
    return care


def _care_mqtt(c: Context):
    """Care devices over MQTT; they feed the care service's geofences, so this runs beside it."""
    from haechi.care.mqtt import CareMqtt

    url, prefix = c.settings.care_mqtt_url or c.settings.mqtt_url, c.settings.care_topic_prefix
    return CareMqtt(url, c["care"], topic_prefix=prefix, client_id=f"haechi-care-{prefix.replace('/', '-')}") \
        if url else None


async def _care_clock(c: Context) -> None:
    """Purge positions past their retention, then check trips, welfare and school zones."""
    care = c["care"]
    removed = await asyncio.to_thread(care.purge, c.now())
    if any(removed.values()):
        log.info("care purge: %s", removed)
    await care.tick(c.now())


CARE = Part(
    "care",
    provides=(("care", _care_service),),
    services=(Service("care", _care_started, ENGINE), Service("care_mqtt", _care_mqtt, ENGINE)),
    jobs=(Job("care-clock", lambda s: s.care_tick_s, _care_clock, ENGINE),),
    routers=("haechi.api.care:router",),
    commands=(("care", "haechi.care.commands:care_app"),),
)


# ── response: incidents of the three centers, 119 units, CCTV events, drones (issue 9) ──────


def _drone_positions(c: Context):
    from haechi.response.drone_positions import watch_drone_positions

    return Hooks(lambda: watch_drone_positions(c.engine, c.bus))  # drone.position on the live stream


RESPONSE = Part(
    "response",
    services=(Service("drone_positions", _drone_positions, ENGINE),),
    routers=("haechi.api.incidents:router", "haechi.api.units:router", "haechi.api.cctv:router",
             "haechi.api.drones:router"),
    commands=(("incident", "haechi.response.commands:incident_app"), ("unit", "haechi.response.commands:unit_app")),
)


# ── roads: routing, evacuation, coverage, closures (issue 9) ────────────────────────────────

ROADS = Part("roads", routers=("haechi.api.roads:router",), commands=(("roads", "haechi.roads.commands:app"),))


# ── simulation: what-ifs of the virtual city ────────────────────────────────────────────────


def _simulation_books(c: Context):
    """Close the books on runs a stop cut short: they can never finish."""
    from haechi.simulation.runs import fail_interrupted

    return Hooks(lambda: asyncio.to_thread(fail_interrupted, c.engine))


SIMULATION = Part("simulation", services=(Service("simulation_books", _simulation_books, ENGINE),),
                  routers=("haechi.api.simulations:router",))


# ── risk: the regional risk index (issue 5) ─────────────────────────────────────────────────

RISK = Part("risk", routers=("haechi.api.risk:router",), commands=(("risk", "haechi.risk.commands:risk_app"),))


# ── warehouse: open data, the lake, marts and patterns; reports in HTML and PDF (issue 7) ───

WAREHOUSE = Part(
    "warehouse",
    routers=("haechi.api.opendata:router", "haechi.api.opendata:page_router", "haechi.api.warehouse:router"),
    commands=(("lake", "haechi.warehouse.commands:app"), ("mart", "haechi.warehouse.commands:mart_app")),
)
REPORTS = Part("reports", commands=(("report", "haechi.reports.commands:app"),))


# ── predict: forecasts on their own, feeding the warnings (issue 5) ─────────────────────────


def _river_forecaster(c: Context):
    from haechi.predict.auto import RiverForecaster

    return RiverForecaster(c.engine, c.bus) if c.settings.river_forecasts else None


PREDICT = Part("predict", services=(Service("forecaster", _river_forecaster, ENGINE),),
               routers=("haechi.api.predictions:router",))


#: Every part, in start order.
PARTS: tuple[Part, ...] = (PLATFORM, SENSING, WARNINGS, ALERTS, IMPORTS, CARE, RESPONSE, ROADS, SIMULATION, RISK,
                           WAREHOUSE, REPORTS, PREDICT)


def commands(parts: tuple[Part, ...] = PARTS) -> list[tuple[str, Any]]:
    """The capabilities' command groups, ``(name, typer app)``, for ``haechi``."""
    return [(name, load(ref)) for part in parts for name, ref in part.commands]
