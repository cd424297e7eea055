"""Registry of simulation kinds.

Each prediction module (``haechi.predict.flood`` …) exposes a module-level ``SIMULATION: Kind``.
The registry imports them lazily so a kind that is not built yet simply does not appear.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel
from sqlalchemy.engine import Engine


class Cancelled(Exception):
    """Raised by ``progress`` when the run was cancelled; the runner records status 'cancelled'."""


# progress(done, total, what): report progress; raises Cancelled when the run was cancelled.
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class Kind:
    name: str  # "flood", "quake", "heat", "crowd"
    params: type[BaseModel]  # scenario input; validation errors name the field
    # run(engine, params, progress) -> {"summary": {...}, "areas": [{code, name_ko, ...}],
    #                                   "features": GeoJSON FeatureCollection, ...}
    run: Callable[[Engine, BaseModel, Progress], dict]
    # Optional: checks that need the DB (e.g. "epicentre inside the city's range"), run before the
    # scenario is queued so bad input is refused with 422 instead of failing later; raises InvalidInput.
    check: Callable[[Engine, BaseModel], None] | None = None


MODULES = {
    "flood": "haechi.predict.flood",
    "quake": "haechi.predict.quake",
    "heat": "haechi.predict.heat",
    "crowd": "haechi.predict.crowd",
}


def no_progress(done: int, total: int, what: str) -> None:
    """A Progress that ignores reports (for direct calls)."""


def kinds() -> dict[str, Kind]:
    """The simulation kinds whose modules exist and expose ``SIMULATION``."""
    found: dict[str, Kind] = {}
    for name, module_name in MODULES.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name and module_name.startswith(error.name):
                continue  # the module (or its package) is not written yet
            raise
        kind = getattr(module, "SIMULATION", None)
        if isinstance(kind, Kind):
            found[name] = kind
    return found
