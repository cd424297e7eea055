"""OGC SensorThings API 1.1 (Part 1: Sensing, with the dataArray extension) under ``/sta/v1.1``.

Modules, each with one concern: ``odata`` parses query options, ``translate`` turns expressions
into SQL, ``entities`` maps the standard's entity types onto the integrated DB's tables and
JSON, ``resources`` resolves resource paths, ``reading`` answers GETs, ``writing`` creates,
updates and deletes entities, ``observing`` sends Observations through the ingest pipeline, and
``routes`` is the thin HTTP layer.
"""

from .routes import router

__all__ = ["router"]
