"""Turning a warning change into a stored, validated, signed CAP alert (the I/O around ``compose``).

The warnings capability calls it for every change of a warning and publishes what it returns as
``alert.sent``; alerts know nothing of warnings beyond the shared words of ``model.hazards``.

The alert's webhook deliveries are planned in the same transaction as the alert (an outbox): one
pending ``deliveries`` row per matching subscription. An alert committed by an engine that died
before it could publish ``alert.sent`` is still delivered, by whichever dispatcher sweeps next.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import Any

from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Connection

from haechi.cities.targeting import AreaFacts
from haechi.core.clock import utcnow
from haechi.model.events import AlertSent
from haechi.model.hazards import Change
from haechi.store import alerting
from haechi.store import warnings as store

from . import issuer, messages
from .cap import Alert, from_xml, to_xml, validate
from .compose import compose, contiguous_pieces, piece_identifier, piece_of, to_json_with_guidance
from .webhooks import wants

AUDIENCES = ("general", "elderly", "children", "disabled", "foreigners")


def alerts_for_change(
    conn: Connection, change: Change, area: AreaFacts, warning_id: int | None, identifier: str, *, sender: str,
    now: datetime, exercise: bool = False, test: bool = False, created_by: str = "warnings-engine",
    languages: list[str] | None = None, expires: datetime | None = None,
) -> list[AlertSent]:
    """Compose, sign, validate against the CAP 1.2 schema and store the alerts of a change: one
    per contiguous piece of its area (``compose.contiguous_pieces``; one for almost every area),
    each referring to the messages of its own piece before it, all recorded against the warning.
    Returns their ``alert.sent`` data, the first piece's first. ``identifier`` is the caller's
    (``compose.make_identifier``), the first piece's: the one a duplicate is looked up by."""
    previous = _latest_by_piece(conn, warning_id)
    pieces = contiguous_pieces(area, messages.library().common["cap"], partial(_geocode_shapes, conn))
    return [_alert_for_piece(conn, change, piece, warning_id, previous.get(n) or previous.get(0),
                             piece_identifier(identifier, n), sender=sender, now=now, exercise=exercise, test=test,
                             created_by=created_by, languages=languages, expires=expires)
            for n, piece in enumerate(pieces)]


def _alert_for_piece(
    conn: Connection, change: Change, area: AreaFacts, warning_id: int | None, previous: dict[str, Any] | None,
    identifier: str, *, sender: str, now: datetime, exercise: bool, test: bool, created_by: str,
    languages: list[str] | None, expires: datetime | None,
) -> AlertSent:
    """One alert, its ``<web>`` its public page."""
    issuing = issuer.current()
    alert = compose(change, area=area, sender=sender, now=now, exercise=exercise, test=test, languages=languages,
                    previous_alert=from_xml(previous["cap_xml"]) if previous else None, audiences=AUDIENCES,
                    identifier=identifier, web=issuing.page_url(identifier))
    if expires is not None:  # an operator's own expiry replaces the hazard's default
        alert = replace(alert, infos=tuple(replace(info, expires=expires) for info in alert.infos))
    xml = issuing.sign(to_xml(alert))
    validate(xml)
    return store_alert(conn, alert, xml, warning_id=warning_id, hazard=change.hazard,
                       crisis_level=change.criterion.crisis_level if change.criterion else None,
                       area_codes=list(area.geocodes), affected=dict(area.affected), created_by=created_by)


def _latest_by_piece(conn: Connection, warning_id: int | None) -> dict[int, dict[str, Any]]:
    """The latest alert of each piece of the warning's area: what the next one of that piece follows."""
    latest: dict[int, dict[str, Any]] = {}
    for alert in store.alerts_of(conn, warning_id) if warning_id is not None else []:
        latest.setdefault(piece_of(alert["identifier"]), alert)
    return latest


def _geocode_shapes(conn: Connection, geocodes: Sequence[str]) -> dict[str, BaseGeometry]:
    """The boundaries of the areas geocodes name (10-digit 행정표준코드: 2-, 5- or 8-digit codes padded)."""
    codes = {g[:n] for g in geocodes for n in (2, 5, 8)}
    return {row["code"].ljust(10, "0"): shape(row["geometry"]) for row in alerting.area_geometries(conn, codes)
            if row["code"].ljust(10, "0") in geocodes and row["geometry"]}


def store_alert(
    conn: Connection, alert: Alert, xml: bytes, *, warning_id: int | None, hazard: str, crisis_level: str | None,
    area_codes: list[str], affected: dict[str, Any], created_by: str,
) -> AlertSent:
    first = alert.infos[0]
    row = {
        "identifier": alert.identifier, "sender": alert.sender, "sent": alert.sent, "status": alert.status,
        "msg_type": alert.msg_type, "references": " ".join(r.text() for r in alert.references) or None,
        "warning_id": warning_id, "hazard": hazard, "crisis_level": crisis_level, "severity": first.severity,
        "urgency": first.urgency, "certainty": first.certainty, "area_codes": list(area_codes),
        "languages": [i.language for i in alert.infos], "affected": affected, "expires": first.expires,
        "cap_xml": xml.decode("utf-8"), "cap_json": to_json_with_guidance(alert), "created_by": created_by,
    }
    alert_id = store.save_alert(conn, row)
    plan_deliveries(conn, {**row, "id": alert_id})
    return _sent(alert_id, alert, hazard, crisis_level, area_codes)


def plan_deliveries(conn: Connection, alert: dict[str, Any]) -> list[int]:
    """The alert's pending webhook deliveries, one per active subscription that wants it, written
    in the caller's transaction (the alert's own); returns their ids. Planned with the wall clock:
    an alert stamped in a replayed scenario's time is still due at once."""
    chosen = [s["id"] for s in alerting.active_subscriptions(conn) if wants(s, alert)]
    return alerting.plan_deliveries(conn, alert["id"], chosen, utcnow())


def alert_sent(row: dict[str, Any]) -> AlertSent:
    """The ``alert.sent`` data of an alert as stored (an engine finding its change already recorded)."""
    alert = from_xml(row["cap_xml"])
    return _sent(row["id"], alert, row["hazard"], row["crisis_level"], row["area_codes"] or [])


def _sent(alert_id: int, alert: Alert, hazard: str, crisis_level: str | None, area_codes: list[str]) -> AlertSent:
    return {"id": alert_id, "identifier": alert.identifier, "status": alert.status, "msg_type": alert.msg_type,
            "hazard": hazard, "crisis_level": crisis_level, "area_codes": list(area_codes),
            "headline": {i.language: i.headline for i in alert.infos}, "sent": alert.sent.isoformat()}
