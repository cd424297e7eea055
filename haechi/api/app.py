"""The FastAPI application: routers per capability, problem+json errors, limits, audit, metrics."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterable

import anyio.to_thread
from fastapi import FastAPI
from sqlalchemy import Engine
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from haechi import __version__
from haechi.core.events import Bus
from haechi.core.settings import Settings, get_settings
from haechi.ingest.pipeline import Pipeline
from haechi.runtime import Context, Role, Runtime
from haechi.runtime.parts import PARTS

from . import reports, sensing
from .audit import AuditMiddleware
from .docs import DESCRIPTION, TAGS, TITLE, install_docs
from .limits import BodySizeLimit
from .metrics import HttpMetrics, MetricsMiddleware
from .pages import install_pages
from .problems import install_problem_handlers
from .public_cache import PublicCache, PublicCacheMiddleware
from .shedding import ReadBound, WriteLimiter, WriteLimits
from .shedding import load as load_shedding
from .system import Readiness

log = logging.getLogger(__name__)


def serve_roles(settings: Settings) -> frozenset[Role]:
    """The roles ``haechi serve`` runs: the API alone with a bus, else the API and the engine.

    With a bus (``HAECHI_BUS_URL``) this is a stateless API, one of any number of replicas:
    ``haechi worker``s store what it queues and ``haechi engine`` (one leading, hot standbys) runs
    everything stateful, so a second replica doubles no alert. Without a bus one process runs it
    all, storing in-process (the embedded default, ``make demo``).
    """
    return frozenset({Role.API}) if settings.bus_url else frozenset({Role.API, Role.ENGINE})


def create_app(
    engine: Engine, settings: Settings | None = None, *, bus: Bus | None = None, pipeline: Pipeline | None = None,
    roles: Iterable[Role] | None = None,
) -> FastAPI:
    """The Haechi HTTP API over the integrated DB behind ``engine`` (already migrated).

    ``bus`` defaults to the in-process bus; ``pipeline`` to one over ``engine`` publishing on it.
    The lifespan runs ``roles`` of every part (default :func:`serve_roles`); its routers are mounted
    here, and what the parts provide and run is on ``app.state`` by name (``app.state.care``,
    ``app.state.warnings`` once started, None where it does not run).
    """
    settings = settings or get_settings()
    context = Context.of(engine, settings, bus=bus, pipeline=pipeline, name="haechi-api")
    runtime = Runtime(PARTS, {Role.API, *(serve_roles(settings) if roles is None else roles)}, context)
    app = FastAPI(
        lifespan=_lifespan,
        title=TITLE,
        description=DESCRIPTION,
        version=__version__,
        openapi_tags=TAGS,
        docs_url=None,
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.state.metrics = HttpMetrics(engine, runtime)
    _show(app, context)
    install_problem_handlers(app)
    for router in runtime.routers():  # each carries the ``/api/v1`` prefix itself: route templates read in full
        app.include_router(router)
    install_docs(app)
    install_pages(app)  # the situation room (/room, the front door) and the citizen portal (/portal)
    app.state.readiness = Readiness(engine)
    app.state.public_cache = PublicCache()  # public reads from memory, dropped on warning and alert events
    app.state.public_cache.listen(context.bus)
    # Added innermost first: metrics see everything (cache hits too), audit sees refusals by the size limit.
    app.add_middleware(PublicCacheMiddleware, cache=app.state.public_cache)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes,
                       overrides={f"{sensing.API_PREFIX}/observations": settings.max_ingest_bytes,
                                  f"{sensing.API_PREFIX}/imports": settings.max_ingest_bytes,
                                  "/sta/v1.1/CreateObservations": settings.max_sta_batch_bytes,
                                  f"{reports.API_PREFIX}/reports/*/photos": settings.max_photo_bytes})
    app.add_middleware(AuditMiddleware, engine=engine)
    # Shedding before the audit: a refusal that cost a database write would shed nothing.
    shedding = load_shedding(settings.shedding_file)
    app.state.write_limiter = WriteLimiter(shedding.writes)
    app.add_middleware(WriteLimits, engine=engine, limiter=app.state.write_limiter)
    app.add_middleware(ReadBound, bound=shedding)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    # Outermost: every layer sees the client a trusted proxy forwarded (`haechi serve` leaves it to this).
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    return app


def _show(app: FastAPI, context: Context) -> None:
    """Put the runtime's pieces where routers read them: ``request.app.state.<name>``."""
    app.state.engine, app.state.settings = context.engine, context.settings
    app.state.bus, app.state.pipeline, app.state.sink = context.bus, context.pipeline, context.sink
    for name, value in context.objects.items():
        setattr(app.state, name, value)


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Run this process's roles (see ``haechi.runtime.parts``) from start-up to shutdown."""
    runtime: Runtime = app.state.runtime
    await runtime.start()
    _show(app, runtime.context)  # in bus mode the bus and the sink are NATS ones now
    app.state.public_cache.listen(app.state.bus)
    await anyio.to_thread.run_sync(app.state.readiness.check)  # the schema revision, read once at start-up
    try:
        yield
    finally:
        app.state.public_cache.stop_listening()
        await runtime.stop()
