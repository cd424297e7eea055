"""Turning a warning change into a stored, validated CAP alert (the I/O around ``compose``)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from haechi.store import warnings as store
from haechi.warnings.engine import Change
from haechi.warnings.targeting import AreaFacts as Target

from .cap import Alert, from_xml, to_xml, validate
from .compose import AreaFacts, compose, to_json_with_guidance

AUDIENCES = ("general", "elderly", "children", "disabled", "foreigners")
COUNTS = ("population", "age_65_plus", "under_15", "foreigners", "facilities", "shelters", "dongs")


def area_of(target: Target) -> AreaFacts:
    """The targeting result in the form the CAP composer takes."""
    return AreaFacts(
        names={"ko": target.name_ko, "en": target.name_en},
        geocodes=tuple(target.geocodes),
        polygons=tuple(tuple(ring) for ring in target.polygons),
        affected={k: int(target.affected[k]) for k in COUNTS if k in target.affected},
    )


def alert_for_change(
    conn: Connection, change: Change, target: Target, warning_id: int | None, previous: dict[str, Any] | None,
    *, sender: str, now: datetime, exercise: bool = False, created_by: str = "warnings-engine",
    languages: list[str] | None = None, expires: datetime | None = None,
) -> dict[str, Any]:
    """Compose, validate against the CAP 1.2 schema and store the alert; returns its ``alert.sent`` data."""
    alert = compose(change, area=area_of(target), sender=sender, now=now, exercise=exercise, languages=languages,
                    previous_alert=from_xml(previous["cap_xml"]) if previous else None, audiences=AUDIENCES)
    if expires is not None:  # an operator's own expiry replaces the hazard's default
        alert = replace(alert, infos=tuple(replace(info, expires=expires) for info in alert.infos))
    xml = to_xml(alert)
    validate(xml)
    return store_alert(conn, alert, xml, warning_id=warning_id, hazard=change.hazard,
                       crisis_level=change.criterion.crisis_level if change.criterion else None,
                       area_codes=target.geocodes, affected=target.affected, created_by=created_by)


def store_alert(
    conn: Connection, alert: Alert, xml: bytes, *, warning_id: int | None, hazard: str, crisis_level: str | None,
    area_codes: list[str], affected: dict[str, Any], created_by: str,
) -> dict[str, Any]:
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
    return {"id": alert_id, "identifier": alert.identifier, "status": alert.status, "msg_type": alert.msg_type,
            "hazard": hazard, "crisis_level": crisis_level, "area_codes": list(area_codes),
            "headline": {i.language: i.headline for i in alert.infos}, "sent": alert.sent.isoformat()}
