"""The care tables: guardians, wards, consent, devices, positions, zones, alerts, trips, access log."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, delete, exists, func, insert, or_, select, update

from haechi.core.clock import utcnow
from haechi.core.errors import Conflict, NotFound
from haechi.store.schema import (
    care_access_log,
    care_activity,
    care_alerts,
    care_consents,
    care_deliveries,
    care_devices,
    care_guardians,
    care_incidents,
    care_positions,
    care_report_events,
    care_trips,
    care_ward_guardians,
    care_wards,
    care_zones,
)
from haechi.store.sql import insert_new, row_dict

# ── guardians and wards ──


def add_guardian(conn: Connection, row: dict[str, Any]) -> dict[str, Any]:
    if row.get("token_id") is not None and guardian_of_token(conn, row["token_id"]) is not None:
        raise Conflict(f"token {row['token_id']} is already bound to a guardian", field="body.token_id")
    new_id = conn.execute(insert(care_guardians).values(**row, created_at=utcnow())).inserted_primary_key[0]
    return get_guardian(conn, new_id)


def get_guardian(conn: Connection, guardian_id: int) -> dict[str, Any]:
    row = conn.execute(select(care_guardians).where(care_guardians.c.id == guardian_id)).first()
    if row is None:
        raise NotFound(f"no guardian with id {guardian_id}")
    return row_dict(row)


def guardian_of_token(conn: Connection, token_id: int | None) -> dict[str, Any] | None:
    if token_id is None:
        return None
    row = conn.execute(select(care_guardians).where(care_guardians.c.token_id == token_id)).first()
    return row_dict(row) if row else None


def update_guardian(conn: Connection, guardian_id: int, values: dict[str, Any]) -> dict[str, Any]:
    conn.execute(update(care_guardians).where(care_guardians.c.id == guardian_id).values(**values))
    return get_guardian(conn, guardian_id)


def add_ward(conn: Connection, row: dict[str, Any], guardian_id: int, relation: str | None) -> dict[str, Any]:
    ward_id = conn.execute(insert(care_wards).values(**row, created_at=utcnow())).inserted_primary_key[0]
    conn.execute(insert(care_ward_guardians).values(ward_id=ward_id, guardian_id=guardian_id, relation=relation))
    return get_ward(conn, ward_id)


def get_ward(conn: Connection, ward_id: int) -> dict[str, Any]:
    row = conn.execute(select(care_wards).where(care_wards.c.id == ward_id)).first()
    if row is None:
        raise NotFound(f"no ward with id {ward_id}")
    return row_dict(row)


def wards(conn: Connection, ids: Iterable[int] | None = None) -> dict[int, dict[str, Any]]:
    query = select(care_wards)
    if ids is not None:
        query = query.where(care_wards.c.id.in_(list(ids)))
    return {r.id: row_dict(r) for r in conn.execute(query)}


def wards_of_guardian(conn: Connection, guardian_id: int) -> list[dict[str, Any]]:
    link = care_ward_guardians.c
    query = select(care_wards).join(care_ward_guardians, link.ward_id == care_wards.c.id).where(
        link.guardian_id == guardian_id).order_by(care_wards.c.id)
    return [row_dict(r) for r in conn.execute(query)]


def add_guardian_to_ward(conn: Connection, ward_id: int, guardian_id: int, relation: str | None) -> None:
    if is_guardian(conn, ward_id, guardian_id):
        return
    conn.execute(insert(care_ward_guardians).values(ward_id=ward_id, guardian_id=guardian_id, relation=relation))


def is_guardian(conn: Connection, ward_id: int, guardian_id: int) -> bool:
    c = care_ward_guardians.c
    return conn.execute(select(c.ward_id).where(c.ward_id == ward_id, c.guardian_id == guardian_id)).first() is not None


def guardians_of(conn: Connection, ward_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
    link = care_ward_guardians.c
    query = select(link.ward_id, care_guardians).join(care_guardians, care_guardians.c.id == link.guardian_id).where(
        link.ward_id.in_(list(ward_ids)))
    found: dict[int, list[dict[str, Any]]] = {}
    for row in conn.execute(query):
        data = row_dict(row)
        found.setdefault(data.pop("ward_id"), []).append(data)
    return found


# ── consent ──


def add_consent(conn: Connection, ward_id: int, row: dict[str, Any]) -> dict[str, Any]:
    new_id = conn.execute(insert(care_consents).values(ward_id=ward_id, **row)).inserted_primary_key[0]
    return row_dict(conn.execute(select(care_consents).where(care_consents.c.id == new_id)).one())


def consents(conn: Connection, ward_id: int) -> list[dict[str, Any]]:
    query = select(care_consents).where(care_consents.c.ward_id == ward_id).order_by(care_consents.c.id)
    return [row_dict(r) for r in conn.execute(query)]


def withdraw_consent(conn: Connection, ward_id: int, at: datetime) -> int:
    """Withdraw every live consent of the ward; returns how many were live."""
    c = care_consents.c
    return conn.execute(update(care_consents).where(c.ward_id == ward_id, c.withdrawn_at.is_(None)).values(
        withdrawn_at=at)).rowcount


def consenting(conn: Connection, ward_ids: Iterable[int], at: datetime) -> set[int]:
    """The wards with a consent in force at ``at`` (granted, not withdrawn, not expired)."""
    c = care_consents.c
    query = select(c.ward_id).where(c.ward_id.in_(list(ward_ids)), c.granted_at <= at, c.valid_until > at,
                                    c.withdrawn_at.is_(None)).distinct()
    return set(conn.execute(query).scalars())


# ── devices ──


def add_device(conn: Connection, ward_id: int, ref: str, kind: str) -> dict[str, Any]:
    if conn.execute(select(care_devices.c.id).where(care_devices.c.ref == ref)).first():
        raise Conflict(f"device {ref!r} is already registered", field="body.ref")
    new_id = conn.execute(insert(care_devices).values(ward_id=ward_id, ref=ref, kind=kind,
                                                      created_at=utcnow())).inserted_primary_key[0]
    return row_dict(conn.execute(select(care_devices).where(care_devices.c.id == new_id)).one())


def devices_by_ref(conn: Connection, refs: Iterable[str]) -> dict[str, dict[str, Any]]:
    refs = list(set(refs))
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(refs), 500):
        query = select(care_devices).where(care_devices.c.ref.in_(refs[start:start + 500]))
        found.update({r.ref: row_dict(r) for r in conn.execute(query)})
    return found


def devices_of(conn: Connection, ward_id: int) -> list[dict[str, Any]]:
    return [row_dict(r) for r in conn.execute(select(care_devices).where(care_devices.c.ward_id == ward_id))]


# ── zones ──


def add_zone(conn: Connection, ward_id: int, row: dict[str, Any]) -> dict[str, Any]:
    new_id = conn.execute(
        insert(care_zones).values(ward_id=ward_id, **row, created_at=utcnow())).inserted_primary_key[0]
    return row_dict(conn.execute(select(care_zones).where(care_zones.c.id == new_id)).one())


def zones(conn: Connection, ward_id: int | None = None) -> list[dict[str, Any]]:
    query = select(care_zones).order_by(care_zones.c.id)
    if ward_id is not None:
        query = query.where(care_zones.c.ward_id == ward_id)
    return [row_dict(r) for r in conn.execute(query)]


def delete_zone(conn: Connection, ward_id: int, zone_id: int) -> None:
    c = care_zones.c
    if conn.execute(delete(care_zones).where(c.id == zone_id, c.ward_id == ward_id)).rowcount == 0:
        raise NotFound(f"ward {ward_id} has no zone {zone_id}")


# ── positions and activity (personal data, purged) ──


def save_positions(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    if rows:
        conn.execute(insert(care_positions), list(rows))
    return len(rows)


def positions(conn: Connection, ward_id: int, *, since: datetime | None = None,
              limit: int = 500) -> list[dict[str, Any]]:
    c = care_positions.c
    query = select(c.at, c.lon, c.lat, c.accuracy_m).where(c.ward_id == ward_id)
    if since is not None:
        query = query.where(c.at >= since)
    return [row_dict(r) for r in conn.execute(query.order_by(c.at.desc()).limit(limit))]


def positions_since(conn: Connection, since: datetime, *, ward_id: int | None = None,
                    until: datetime | None = None) -> list[tuple[int, datetime, float, float]]:
    """(ward, at, lon, lat) of every stored position from ``since`` (to before ``until``), oldest first."""
    c = care_positions.c
    query = select(c.ward_id, c.at, c.lon, c.lat).where(c.at >= since).order_by(c.at, c.id)
    if ward_id is not None:
        query = query.where(c.ward_id == ward_id)
    if until is not None:
        query = query.where(c.at < until)
    return [tuple(r) for r in conn.execute(query)]


def save_activity(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    if rows:
        conn.execute(insert(care_activity), list(rows))
    return len(rows)


def last_activity(conn: Connection, ward_ids: Iterable[int]) -> dict[int, datetime]:
    c = care_activity.c
    query = select(c.ward_id, func.max(c.at)).where(c.ward_id.in_(list(ward_ids))).group_by(c.ward_id)
    return dict(conn.execute(query).all())


def purge(conn: Connection, before: datetime) -> dict[str, int]:
    """Delete positions and activity older than ``before``; clear alert coordinates as old."""
    removed = {
        "positions": conn.execute(delete(care_positions).where(care_positions.c.at < before)).rowcount,
        "activity": conn.execute(delete(care_activity).where(care_activity.c.at < before)).rowcount,
    }
    a = care_alerts.c
    removed["alert_positions"] = conn.execute(update(care_alerts).where(
        a.at < before, or_(a.lon.is_not(None), a.lat.is_not(None))).values(lon=None, lat=None)).rowcount
    # the bus redelivers within minutes (a few tries, then it gives an event up): a retention's ids is ample
    removed["report_events"] = conn.execute(delete(care_report_events).where(
        care_report_events.c.handled_at < before)).rowcount
    return removed


def first_handling(conn: Connection, event_id: str, now: datetime) -> bool:
    """Record that the ``care.reports`` event ``event_id`` is being stored, in the transaction
    storing it; False when it was already (a redelivery: store nothing). A concurrent transaction
    holding the same id makes this wait for its outcome."""
    return insert_new(conn, care_report_events, [{"id": event_id, "handled_at": now}], ["id"]) == 1


# ── alerts ──


def add_alert(conn: Connection, row: dict[str, Any]) -> dict[str, Any]:
    new_id = conn.execute(insert(care_alerts).values(status="open", **row)).inserted_primary_key[0]
    return get_alert(conn, new_id)


def add_alerts(conn: Connection, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Insert many alerts in one statement; returns them as stored, in order."""
    if not rows:
        return []
    stored = conn.execute(insert(care_alerts).returning(care_alerts, sort_by_parameter_order=True),
                          [{"status": "open", **r} for r in rows])
    return [row_dict(r) for r in stored]


def get_alert(conn: Connection, alert_id: int) -> dict[str, Any]:
    row = conn.execute(select(care_alerts).where(care_alerts.c.id == alert_id)).first()
    if row is None:
        raise NotFound(f"no care alert with id {alert_id}")
    return row_dict(row)


def alerts(conn: Connection, ward_id: int, *, with_position: bool, limit: int = 100) -> list[dict[str, Any]]:
    c = care_alerts.c
    columns = [col for col in care_alerts.c if with_position or col.name not in ("lon", "lat")]
    query = select(*columns).where(c.ward_id == ward_id).order_by(c.id.desc()).limit(limit)
    return [row_dict(r) for r in conn.execute(query)]


def alerts_since(conn: Connection, kinds: Iterable[str], since: datetime) -> list[dict[str, Any]]:
    """(ward, kind, at, detail) of the alerts of ``kinds`` raised from ``since`` on, oldest first."""
    c = care_alerts.c
    query = select(c.ward_id, c.kind, c.at, c.detail).where(c.kind.in_(list(kinds)), c.at >= since).order_by(c.at)
    return [row_dict(r) for r in conn.execute(query)]


def set_alert(conn: Connection, alert_id: int, **values: Any) -> None:
    conn.execute(update(care_alerts).where(care_alerts.c.id == alert_id).values(**values))


def open_welfare_checks(conn: Connection) -> list[dict[str, Any]]:
    c = care_alerts.c
    return [row_dict(r) for r in conn.execute(select(care_alerts).where(
        c.kind == "welfare_check", c.status == "open"))]


def escalations(conn: Connection, area_code: str | None, limit: int = 100) -> list[dict[str, Any]]:
    """Escalated welfare checks for the district offices (no positions)."""
    a, w = care_alerts.c, care_wards.c
    query = select(a.id, a.ward_id, a.kind, a.at, a.status, w.alias, w.area_code).join(
        care_wards, w.id == a.ward_id).where(a.kind == "welfare_escalated").order_by(a.id.desc()).limit(limit)
    if area_code:
        query = query.where(w.area_code.startswith(area_code))
    return [row_dict(r) for r in conn.execute(query)]


# ── guardian notices: the outbox of care alerts' webhooks ──


def add_deliveries(conn: Connection, pairs: Iterable[tuple[int, int]], now: datetime) -> int:
    """A pending delivery per (alert, guardian), once; written in the alerts' own transaction."""
    rows = [{"alert_id": a, "guardian_id": g, "status": "pending", "attempts": 0, "next_attempt_at": now,
             "created_at": now} for a, g in pairs]
    return insert_new(conn, care_deliveries, rows, key=("alert_id", "guardian_id"))


def due_deliveries(conn: Connection, now: datetime, *, alert_id: int | None = None) -> dict[int, list[int]]:
    """Pending deliveries due at ``now`` (never tried, or a claim whose lease ran out): alert → ids."""
    c = care_deliveries.c
    query = select(c.alert_id, c.id).where(c.status == "pending", c.next_attempt_at <= now).order_by(c.id)
    if alert_id is not None:
        query = query.where(c.alert_id == alert_id)
    due: dict[int, list[int]] = {}
    for a, d in conn.execute(query):
        due.setdefault(a, []).append(d)
    return due


def claim_delivery(conn: Connection, delivery_id: int, now: datetime, lease: timedelta) -> dict[str, Any] | None:
    """Take a due delivery for one attempt, in one conditional UPDATE: two processes never both get
    it; one that dies mid-attempt leaves it due again once the lease runs out. None: not ours."""
    c = care_deliveries.c
    claimed = conn.execute(update(care_deliveries).where(
        c.id == delivery_id, c.status == "pending", c.next_attempt_at <= now).values(
        next_attempt_at=now + lease, attempts=c.attempts + 1))
    if claimed.rowcount != 1:
        return None
    return row_dict(conn.execute(select(care_deliveries).where(c.id == delivery_id)).one())


def record_delivery(conn: Connection, delivery_id: int, *, delivered: bool, response_status: int | None,
                    error: str | None, now: datetime) -> None:
    conn.execute(update(care_deliveries).where(care_deliveries.c.id == delivery_id).values(
        status="delivered" if delivered else "failed", response_status=response_status, error=error,
        next_attempt_at=None, delivered_at=now if delivered else None))


def deliveries_of(conn: Connection, alert_id: int) -> list[dict[str, Any]]:
    c = care_deliveries.c
    return [row_dict(r) for r in conn.execute(select(care_deliveries).where(c.alert_id == alert_id).order_by(c.id))]


def settle_deliveries(conn: Connection, alert_id: int | None = None, since: datetime | None = None) -> int:
    """Give each alert (this one, or those raised since ``since``) whose deliveries are all done its
    ``delivery`` outcome: delivered when every guardian's was, else failed (none when it had none).
    Returns how many were settled."""
    a, d = care_alerts.c, care_deliveries.c
    open_alerts = select(a.id).where(a.delivery.is_(None), ~exists().where(
        d.alert_id == a.id, d.status == "pending"))
    if alert_id is not None:
        open_alerts = open_alerts.where(a.id == alert_id)
    if since is not None:
        open_alerts = open_alerts.where(a.at >= since)
    settled = 0
    for done in conn.scalars(open_alerts).all():
        statuses = set(conn.scalars(select(d.status).where(d.alert_id == done)))
        outcome = "none" if not statuses else "delivered" if statuses == {"delivered"} else "failed"
        settled += conn.execute(update(care_alerts).where(a.id == done, a.delivery.is_(None))
                                .values(delivery=outcome)).rowcount
    return settled


# ── access log ──


def log_access(conn: Connection, ward_id: int, actor: str, role: str, action: str,
               detail: dict[str, Any] | None = None) -> None:
    conn.execute(insert(care_access_log).values(ward_id=ward_id, at=utcnow(), actor=actor, role=role,
                                                action=action, detail=detail))


def access_log(conn: Connection, ward_id: int, limit: int = 200) -> list[dict[str, Any]]:
    c = care_access_log.c
    query = select(care_access_log).where(c.ward_id == ward_id).order_by(c.id.desc()).limit(limit)
    return [row_dict(r) for r in conn.execute(query)]


# ── trips ──


def start_trip(conn: Connection, ward_id: int, row: dict[str, Any]) -> dict[str, Any]:
    c = care_trips.c
    if conn.execute(select(c.id).where(c.ward_id == ward_id, c.status == "active")).first():
        raise Conflict(f"ward {ward_id} already has an active trip; end it first")
    new_id = conn.execute(insert(care_trips).values(ward_id=ward_id, status="active", **row)).inserted_primary_key[0]
    return get_trip(conn, new_id)


def get_trip(conn: Connection, trip_id: int) -> dict[str, Any]:
    row = conn.execute(select(care_trips).where(care_trips.c.id == trip_id)).first()
    if row is None:
        raise NotFound(f"no trip with id {trip_id}")
    return row_dict(row)


def active_trips(conn: Connection) -> list[dict[str, Any]]:
    return [row_dict(r) for r in conn.execute(select(care_trips).where(care_trips.c.status == "active"))]


def end_trip(conn: Connection, trip_id: int, status: str, at: datetime) -> None:
    c = care_trips.c
    conn.execute(update(care_trips).where(c.id == trip_id, c.status == "active").values(status=status, ended_at=at))


# ── missing-person incidents ──


def link_incident(conn: Connection, ward_id: int, incident_id: int | None, at: datetime) -> dict[str, Any]:
    new_id = conn.execute(insert(care_incidents).values(ward_id=ward_id, incident_id=incident_id,
                                                        opened_at=at)).inserted_primary_key[0]
    return row_dict(conn.execute(select(care_incidents).where(care_incidents.c.id == new_id)).one())


def open_incident_of(conn: Connection, ward_id: int) -> dict[str, Any] | None:
    c = care_incidents.c
    row = conn.execute(select(care_incidents).where(c.ward_id == ward_id, c.closed_at.is_(None))
                       .order_by(c.id.desc())).first()
    return row_dict(row) if row else None


def close_incidents(conn: Connection, ward_id: int, at: datetime) -> int:
    c = care_incidents.c
    return conn.execute(update(care_incidents).where(and_(c.ward_id == ward_id, c.closed_at.is_(None)))
                        .values(closed_at=at)).rowcount


def export(conn: Connection, ward_id: int) -> dict[str, Any]:
    """Everything held about a ward for the data subject — no positions, no coordinates (PIPA art. 35)."""
    return {
        "ward": get_ward(conn, ward_id),
        "guardians": [{k: g[k] for k in ("id", "name", "language", "needs", "hazards")}
                      for g in guardians_of(conn, [ward_id]).get(ward_id, [])],
        "consents": consents(conn, ward_id),
        "devices": devices_of(conn, ward_id),
        "zones": [{k: v for k, v in z.items() if k != "geometry"} for z in zones(conn, ward_id)],
        "alerts": alerts(conn, ward_id, with_position=False, limit=10_000),
        "access_log": access_log(conn, ward_id, limit=10_000),
    }


def latest_alert_at(conn: Connection, ward_id: int, kind: str) -> datetime | None:
    c = care_alerts.c
    return conn.execute(select(func.max(c.at)).where(c.ward_id == ward_id, c.kind == kind)).scalar()


def answer_open_checks(conn: Connection, ward_ids: Iterable[int], at: datetime, by: str) -> int:
    """New activity at home answers the open welfare checks of those wards."""
    c = care_alerts.c
    ids = list(ward_ids)
    if not ids:
        return 0
    return conn.execute(update(care_alerts).where(c.ward_id.in_(ids), c.kind == "welfare_check", c.status == "open")
                        .values(status="answered", answered_at=at)).rowcount


def bind_device(conn: Connection, device_id: int, token_id: int) -> None:
    """Tie a device to the token it first reported with (only while it is still unbound)."""
    c = care_devices.c
    conn.execute(update(care_devices).where(c.id == device_id, c.token_id.is_(None)).values(token_id=token_id))
