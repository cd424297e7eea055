"""Importers that link existing systems: public weather, air, river and disaster data, registers of
places, other SensorThings servers, and any CSV/GeoJSON with a mapping file (docs/imports.md).

``run_import(engine, kind, source, actor=…)`` streams a file (or URL), validates every row and
reports rows accepted, rejected (kept with their reason as dead letters ``import:<kind>``) and
duplicates skipped; each run is recorded in ``import_runs``.
"""

from .service import kinds, run_import

__all__ = ["kinds", "run_import"]
