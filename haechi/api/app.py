"""The FastAPI application: routers per capability, problem+json errors, limits, audit, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime

import anyio.to_thread
from fastapi import FastAPI
from sqlalchemy import Engine

from haechi import __version__
from haechi.alerts.channels import AlertDispatcher
from haechi.alerts.egress import WebhookPolicy
from haechi.bus.memory import InProcessBus
from haechi.bus.nats import NatsBus
from haechi.care.mqtt import CareMqtt
from haechi.care.service import CareService, purge_every
from haechi.core.clock import utcnow
from haechi.core.events import Bus, Event
from haechi.core.settings import Settings, get_settings
from haechi.ingest.mqtt import MqttIngest
from haechi.ingest.pipeline import Pipeline
from haechi.ingest.queue import LocalSink, open_sink
from haechi.ingest.watch import newly_silent
from haechi.predict.auto import RiverForecaster
from haechi.response.watch import watch_drone_positions
from haechi.simulation.runs import fail_interrupted
from haechi.warnings.service import WarningService
from haechi.web import install_pages

from . import (
    access,
    alerts_manual,
    alerts_public,
    areas,
    care,
    cctv,
    disasters,
    drones,
    imports,  # importers from existing systems (issue 7)
    incidents,
    opendata,  # open data (issue 7)
    places,
    predictions,  # live forecasts (issue 5)
    projects,
    reports,
    risk,
    roads,
    sensing,
    simulations,
    subscriptions,
    system,
    units,
    warehouse,  # the warehouse for staff (issue 7)
    warnings,
)
from .audit import AuditMiddleware
from .docs import DESCRIPTION, TAGS, TITLE, install_docs
from .limits import BodySizeLimit
from .metrics import HttpMetrics, MetricsMiddleware
from .problems import install_problem_handlers
from .sensorthings import router as sensorthings_router

#: The capability routers; each carries the ``/api/v1`` prefix itself, so route templates
#: (metrics labels, audit) read in full.
API_ROUTERS = (
    areas.router,
    places.router,
    disasters.router,
    projects.router,
    reports.router,
    access.router,
    sensing.router,
    warnings.router,
    alerts_manual.router,
    imports.router,  # importers from existing systems (issue 7)
    care.router,  # care for the vulnerable (issue 6)
    incidents.router,
    units.router,
    cctv.router,
    drones.router,
    roads.router,  # roads, routing, evacuation, coverage (issue 9)
    simulations.router,
    risk.router,
    opendata.router, opendata.page_router,  # open data (issue 7)
    warehouse.router,  # lake, marts and patterns for staff (issue 7)
    predictions.router,  # live forecasts feeding warnings (issue 5)
)
log = logging.getLogger(__name__)


def create_app(
    engine: Engine, settings: Settings | None = None, *, bus: Bus | None = None, pipeline: Pipeline | None = None
) -> FastAPI:
    """The Haechi HTTP API over the integrated DB behind ``engine`` (already migrated).

    ``bus`` defaults to the in-process bus; ``pipeline`` to one over ``engine`` publishing on it.
    """
    settings = settings or get_settings()
    bus = bus or InProcessBus()
    app = FastAPI(
        lifespan=_lifespan,
        title=TITLE,
        description=DESCRIPTION,
        version=__version__,
        openapi_tags=TAGS,
        docs_url=None,
        redoc_url=None,
    )
    app.state.engine = engine
    app.state.settings = settings
    app.state.bus = bus
    app.state.pipeline = pipeline or Pipeline(engine, bus=bus)
    # Where adapters hand readings: the pipeline itself, or the NATS ingest queue (lifespan).
    app.state.sink = LocalSink(app.state.pipeline)
    app.state.metrics = HttpMetrics(engine)
    app.state.webhook_policy = WebhookPolicy.of(settings.webhook_allow_http, settings.webhook_allowed_networks)
    app.state.care = CareService(engine, bus, retention_h=settings.care_retention_h,  # issue 6
                                 webhook_policy=app.state.webhook_policy)
    install_problem_handlers(app)
    for router in API_ROUTERS:
        app.include_router(router)
    app.include_router(system.router)
    app.include_router(alerts_public.router)
    app.include_router(subscriptions.router)
    app.include_router(sensorthings_router)
    install_docs(app)
    install_pages(app)  # the situation room (/room, the front door) and the citizen portal (/portal)
    # Added innermost first: metrics see everything, audit sees refusals by the size limit.
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes,
                       overrides={f"{sensing.API_PREFIX}/observations": settings.max_ingest_bytes,
                                  f"{sensing.API_PREFIX}/imports": settings.max_ingest_bytes,
                                  "/sta/v1.1/CreateObservations": settings.max_sta_batch_bytes,
                                  f"{reports.API_PREFIX}/reports/*/photos": settings.max_photo_bytes})
    app.add_middleware(AuditMiddleware, engine=engine)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    return app


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start-up: restore the live state and close the books on simulations a stop cut short;
    connect the NATS bus and ingest queue and subscribe to MQTT when configured; run the warnings
    service, the river forecaster, the alert refresher, the webhook dispatcher, the silence watcher
    and the care service (its device consumer and scheduled purge) until shutdown."""
    pipeline: Pipeline = app.state.pipeline
    await anyio.to_thread.run_sync(pipeline.warm)
    await anyio.to_thread.run_sync(fail_interrupted, app.state.engine)  # what-ifs a restart cut short
    settings = app.state.settings
    if settings.bus_url:  # scale-out: adapters queue on JetStream, `haechi worker`s store
        app.state.sink = await open_sink(pipeline, settings.bus_url)
        app.state.bus = await NatsBus.connect(settings.bus_url, name="haechi-api")
        app.state.bus.subscribe("observation.stored", _show_stored(pipeline), ephemeral=True)
    watch_drone_positions(app.state.engine, app.state.bus)  # drone.position on the live stream (issue 9)
    watcher = asyncio.create_task(_watch_silence(app), name="silence-watch")
    mqtt = MqttIngest(settings.mqtt_url, app.state.sink) if settings.mqtt_url else None
    if mqtt:
        await mqtt.start()
    app.state.mqtt = mqtt
    app.state.warnings = WarningService(app.state.engine, app.state.bus, sender=settings.cap_sender)
    app.state.warnings.start()
    refresher = asyncio.create_task(app.state.warnings.keep_fresh(), name="alert-refresh")
    forecaster = RiverForecaster(app.state.engine, app.state.bus) if settings.river_forecasts else None
    if forecaster:  # forecasts on each gauge reading, judged by the warnings service (issue 5)
        forecaster.start()
    app.state.dispatcher = AlertDispatcher(
        app.state.engine, app.state.bus, public_url=settings.public_url or f"http://{settings.host}:{settings.port}",
        policy=app.state.webhook_policy,
    )
    await app.state.dispatcher.start()
    # Care (issue 6): zones/hazards/trips loaded, device MQTT consumer, scheduled purge and clock.
    care: CareService = app.state.care
    care.bus = app.state.bus
    await care.start()
    care_url = settings.care_mqtt_url or settings.mqtt_url
    care_mqtt = CareMqtt(care_url, care, topic_prefix=settings.care_topic_prefix,
                         client_id=f"haechi-care-{settings.care_topic_prefix.replace('/', '-')}") if care_url else None
    if care_mqtt:
        await care_mqtt.start()
    app.state.care_mqtt = care_mqtt
    care_clock = asyncio.create_task(purge_every(care, settings.care_tick_s), name="care-purge")
    try:
        yield
    finally:
        care_clock.cancel()
        if care_mqtt:
            await care_mqtt.stop()
        await care.stop()
        app.state.warnings.stop()
        if forecaster:
            forecaster.stop()
        refresher.cancel()
        await app.state.dispatcher.stop()
        if mqtt:
            await mqtt.stop()
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await app.state.sink.close()
        if settings.bus_url:
            await app.state.bus.close()


def _show_stored(pipeline: Pipeline):
    """Keep this process's live state current from what the workers stored (scale-out mode)."""

    async def show(event: Event) -> None:
        for o in event.data["observations"]:
            pipeline.state.show(o["datastream_id"], datetime.fromisoformat(o["phenomenon_time"]),
                                o["result"], o["quality"])

    return show


async def _watch_silence(app: FastAPI) -> None:
    """Publish ``sensor.silent`` once per stream that stops reporting (an operator notice)."""
    pipeline: Pipeline = app.state.pipeline
    period = app.state.settings.silence_check_s
    while True:
        await asyncio.sleep(period)
        intervals = {i: p.limits.interval_s for i, p in pipeline.profiles.items() if p.limits}
        for stream_id in newly_silent(pipeline.state, intervals, utcnow()):
            profile = pipeline.profiles.get(stream_id)
            last = pipeline.state.get(stream_id)
            await app.state.bus.publish(Event("sensor.silent", {
                "datastream_id": stream_id, "name": profile.name if profile else None,
                "last_time": last.phenomenon_time.isoformat() if last else None}))
