"""The FastAPI application: routers per capability, problem+json errors, limits, audit, metrics."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy import Engine

from haechi import __version__
from haechi.core.settings import Settings, get_settings

from . import access, areas, disasters, places, projects, reports, system
from .audit import AuditMiddleware
from .docs import DESCRIPTION, TAGS, TITLE, install_docs
from .limits import BodySizeLimit
from .metrics import HttpMetrics, MetricsMiddleware
from .problems import install_problem_handlers

#: The capability routers; each carries the ``/api/v1`` prefix itself, so route templates
#: (metrics labels, audit) read in full.
API_ROUTERS = (
    areas.router,
    places.router,
    disasters.router,
    projects.router,
    reports.router,
    access.router,
)


def create_app(engine: Engine, settings: Settings | None = None) -> FastAPI:
    """The Haechi HTTP API over the integrated DB behind ``engine`` (already migrated)."""
    settings = settings or get_settings()
    app = FastAPI(
        title=TITLE,
        description=DESCRIPTION,
        version=__version__,
        openapi_tags=TAGS,
        docs_url=None,
        redoc_url=None,
    )
    app.state.engine = engine
    app.state.settings = settings
    app.state.metrics = HttpMetrics(engine)
    install_problem_handlers(app)
    for router in API_ROUTERS:
        app.include_router(router)
    app.include_router(system.router)
    install_docs(app)
    # Added innermost first: metrics see everything, audit sees refusals by the size limit.
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(AuditMiddleware, engine=engine)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    return app
