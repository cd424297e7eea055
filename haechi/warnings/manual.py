"""Warnings by hand: an operator issues, updates or cancels a warning and its alert, runs a drill, or
sends a test for an aggregator.

The same path as the engine's (:func:`.service.change_warning`): a warning change for a hazard ×
area, targeted from the integrated DB, its CAP alert composed from the hand-written templates and
validated against the CAP schema by the alerts capability, then ``warning.changed`` and
``alert.sent`` published on the bus given.

A test (CAP ``status`` Test) checks the path end to end with an aggregator (Google Public Alerts
asks for periodic ones, update and cancel included): its warning is kept out of the public like a
drill's, and the message goes only to the aggregators' feed, never to the portal, citizens'
webhooks or the map.
"""

from __future__ import annotations

from datetime import datetime

import anyio.to_thread
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import Engine

from haechi.alerts.messages import library
from haechi.core.errors import Conflict, InvalidInput, NotFound
from haechi.core.events import Bus
from haechi.model.events import AlertSent
from haechi.model.hazards import Change, Criterion
from haechi.store import areas
from haechi.store import warnings as store

from .criteria import load_criteria
from .service import change_warning, practice_of

#: The area key of a code by its length (codes nest: 11 Seoul ⊃ 11140 Jung-gu ⊃ 11140101 a dong).
AREA_KINDS = {2: "city", 5: "district", 8: "dong"}


class ManualAlert(BaseModel):
    """What an operator gives: the hazard and its official level, where, and optionally more."""

    model_config = ConfigDict(extra="forbid")

    hazard: str = Field(description="e.g. heavy_rain, fine_dust, river_flood, heat_wave")
    level: str = Field(description="The official level: advisory, warning … (see GET /api/v1/criteria)")
    area: str = Field(pattern=r"^\d{2}(\d{3}(\d{3})?)?$",
                      description="City (2 digits, city-wide), district (5 digits) or dong (8 digits) code")
    value: float | None = Field(None, description="The observed value to quote; the threshold if absent")
    languages: list[str] | None = Field(None, description="Subset of ko, en, zh, ja, vi (all by default)")
    expires: AwareDatetime | None = Field(None, description="When the alert expires (the hazard's default if absent)")
    exercise: bool = Field(False, description="A drill: CAP status Exercise, marked everywhere")
    test: bool = Field(False, description="An end-to-end check with an aggregator: CAP status Test, only in "
                       "the aggregators' feed (/alerts/aggregators.atom), never shown to citizens")


def criterion_for(hazard: str, level: str) -> Criterion:
    found = [c for c in load_criteria() if c.hazard == hazard and c.level == level]
    if not found:
        known = sorted({(c.hazard, c.level) for c in load_criteria() if c.hazard == hazard})
        if not known:
            hazards = ", ".join(sorted({c.hazard for c in load_criteria()}))
            raise InvalidInput(f"unknown hazard {hazard!r}; known: {hazards}", field="body.hazard")
        raise InvalidInput(f"{hazard} has no level {level!r}; known: {', '.join(lv for _, lv in known)}",
                           field="body.level")
    return found[0]


async def issue(db: Engine, bus: Bus, request: ManualAlert, *, sender: str, now: datetime,
                actor: str) -> AlertSent:
    """Issue (or, when one is in force there, update) the warning and its alert."""
    change = await anyio.to_thread.run_sync(_issue_change, db, request, now)
    return await change_warning(db, bus, change, sender=sender, now=now, exercise=request.exercise,
                                test=request.test, languages=_cap_languages(request.languages),
                                expires=request.expires, created_by=actor)


async def cancel(db: Engine, bus: Bus, warning_id: int, *, sender: str, now: datetime, actor: str) -> AlertSent:
    """The all-clear of a warning in force (a drill's is a drill, a test's a test)."""
    change, exercise, test = await anyio.to_thread.run_sync(_cancel_change, db, warning_id, now)
    return await change_warning(db, bus, change, sender=sender, now=now, exercise=exercise, test=test,
                                created_by=actor)


def _issue_change(db: Engine, request: ManualAlert, now: datetime) -> Change:
    criterion = criterion_for(request.hazard, request.level)
    _check(db, request, now)
    key = f"{AREA_KINDS[len(request.area)]}:{request.area}"
    practice = request.exercise or request.test
    with db.connect() as conn:
        in_force = store.active_warning(conn, request.hazard, key, practice=practice)
        other = None if in_force else store.active_warning(conn, request.hazard, key, practice=not practice)
    if other is not None:  # an operator mixing them up: the engine may, an operator is asked to choose
        what = "an actual warning" if practice else "a drill or test"
        raise Conflict(f"{what} of {request.hazard} is in force in {request.area} (warning {other['id']}): "
                       "cancel it first, so real and practice messages never update each other")
    kind = "update" if in_force else "issue"
    return Change(kind, request.hazard, key, criterion, None,
                  request.value if request.value is not None else criterion.value, now, None)


def _cancel_change(db: Engine, warning_id: int, now: datetime) -> tuple[Change, bool, bool]:
    """The cancel of a warning in force, and whether it is a drill, and whether a test."""
    with db.connect() as conn:
        warning = store.get_warning(conn, warning_id)
        latest = store.latest_alert_of(conn, warning_id)
    if warning["status"] != "active":
        raise Conflict(f"warning {warning_id} is already {warning['status']}")
    criterion = criterion_for(warning["hazard"], warning["level"])
    change = Change("cancel", warning["hazard"], warning["area_key"], None, criterion, warning["value"], now, None)
    return change, *practice_of(warning, latest)


def _check(db: Engine, request: ManualAlert, now: datetime) -> None:
    if request.exercise and request.test:
        raise InvalidInput("an alert is a drill (exercise) or a test (test), not both", field="body.test")
    if request.expires is not None and request.expires <= now:
        raise InvalidInput(f"expires {request.expires.isoformat()} is in the past", field="body.expires")
    with db.connect() as conn:
        try:
            areas.get_area(conn, request.area, geometry=False)
        except NotFound:
            raise InvalidInput(f"no city, district or dong {request.area} is loaded", field="body.area") from None
    known = {lang.split("-")[0] for lang in library().languages}
    for n, lang in enumerate(request.languages or []):
        if lang.split("-")[0] not in known:
            raise InvalidInput(f"unknown language {lang!r}; alerts are written in {', '.join(sorted(known))}",
                               field=f"body.languages.{n}")


def _cap_languages(requested: list[str] | None) -> list[str] | None:
    """Short codes (ko) to the library's CAP language tags (ko-KR)."""
    if not requested:
        return None
    tags = {tag.split("-")[0]: tag for tag in library().languages}
    return [tags[lang.split("-")[0]] for lang in requested]
