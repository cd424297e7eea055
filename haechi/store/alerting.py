"""Alerts as the channels read them, webhook subscriptions, and the delivery log.

Area filters run in SQL on the JSON text of ``area_codes`` (portable across SQLite and
PostgreSQL): a code is always a quoted string of digits there, so ``"11680`` finds codes starting
with 11680 and ``"11"`` finds the Seoul-wide code exactly.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Text, cast, delete, insert, or_, select, update

from haechi.core.errors import Conflict, InvalidInput, NotFound

from .schema import admin_areas, alerts, deliveries, subscriptions
from .sql import insert_new, row_dict

#: The CAP scope of what citizens, aggregators and channels receive; ``Restricted`` is for staff.
PUBLIC_SCOPE = "Public"
#: Subscription columns that may be written through the API (the secret has its own path).
SUBSCRIPTION_FIELDS = (
    "name", "url", "area_codes", "languages", "audiences", "include_exercises", "active",
)
#: Whether the schema can remember a subscription's body format (JSON or CAP XML).


def new_secret() -> str:
    """A fresh HMAC key: 256 random bits."""
    return secrets.token_urlsafe(32)


# ── alerts ──────────────────────────────────────────────────────────────────────────────


def _area_clause(area_code: str):
    """Alerts whose areas meet ``area_code``: inside it, or covering it (a prefix of it)."""
    text = cast(alerts.c.area_codes, Text)
    inside = text.like(f'%"{area_code}%')
    covering = [text.like(f'%"{area_code[:n]}"%') for n in range(2, len(area_code))]
    return or_(inside, *covering)


def _check_code(area_code: str) -> None:
    # The code goes into a LIKE pattern: digits only keep it free of wildcards.
    if not area_code.isdigit():
        raise InvalidInput(f"area codes are digits, not {area_code!r}", field="area")


def list_alerts(
    conn: Connection,
    *,
    statuses: Iterable[str],
    area_code: str | None = None,
    hazard: str | None = None,
    since: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
    scopes: Iterable[str] = (PUBLIC_SCOPE,),
) -> list[dict[str, Any]]:
    """Alerts with one of ``statuses`` and CAP ``scopes``, newest first; ``area_code`` keeps those
    meeting it. Public alerts only unless asked: a Restricted one (its warning reaches no place)
    is for staff."""
    c = alerts.c
    query = (
        select(alerts)
        .where(c.status.in_(list(statuses)), c.cap_json["scope"].as_string().in_(list(scopes)))
        .order_by(c.sent.desc(), c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    if area_code:
        _check_code(area_code)
        query = query.where(_area_clause(area_code))
    if hazard:
        query = query.where(c.hazard == hazard)
    if since:
        query = query.where(c.sent >= since)
    return [row_dict(r) for r in conn.execute(query)]


def area_geometries(conn: Connection, codes: Iterable[str]) -> list[dict[str, Any]]:
    """Code and GeoJSON geometry of these administrative areas: where an alert's geocodes lie."""
    c = admin_areas.c
    return [row_dict(r) for r in conn.execute(select(c.code, c.geometry).where(c.code.in_(sorted(set(codes)))))]


def get_alert(conn: Connection, alert_id: int) -> dict[str, Any]:
    row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).first()
    if row is None:
        raise NotFound(f"no alert with id {alert_id}")
    return row_dict(row)


# ── subscriptions ───────────────────────────────────────────────────────────────────────


def create_subscription(conn: Connection, values: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Store a subscription; its secret is generated when not given. Returns it with the secret."""
    row = {**values, "created_at": now}
    row["secret"] = row.get("secret") or new_secret()
    new_id = conn.execute(insert(subscriptions).values(**row)).inserted_primary_key[0]
    return get_subscription(conn, new_id, with_secret=True)


def get_subscription(
    conn: Connection, subscription_id: int, *, with_secret: bool = False
) -> dict[str, Any]:
    row = conn.execute(select(subscriptions).where(subscriptions.c.id == subscription_id)).first()
    if row is None:
        raise NotFound(f"no subscription with id {subscription_id}")
    found = row_dict(row)
    if not with_secret:
        del found["secret"]
    return found


def list_subscriptions(conn: Connection, *, active: bool | None = None) -> list[dict[str, Any]]:
    """Every subscription, oldest first, without secrets."""
    columns = [c for c in subscriptions.c if c.name != "secret"]
    query = select(*columns).order_by(subscriptions.c.id)
    if active is not None:
        query = query.where(subscriptions.c.active.is_(active))
    return [row_dict(r) for r in conn.execute(query)]


def update_subscription(
    conn: Connection, subscription_id: int, changes: dict[str, Any]
) -> dict[str, Any]:
    """Change the given fields; the rest stay."""
    if changes:
        conn.execute(
            update(subscriptions).where(subscriptions.c.id == subscription_id).values(**changes)
        )
    return get_subscription(conn, subscription_id)


def rotate_secret(conn: Connection, subscription_id: int) -> dict[str, Any]:
    """Give the subscription a new secret; returns it with the secret (shown this once)."""
    get_subscription(conn, subscription_id)
    conn.execute(
        update(subscriptions)
        .where(subscriptions.c.id == subscription_id)
        .values(secret=new_secret())
    )
    return get_subscription(conn, subscription_id, with_secret=True)


def delete_subscription(conn: Connection, subscription_id: int) -> None:
    """Delete the subscription and its delivery log (deactivate it to keep the log)."""
    done = conn.execute(delete(subscriptions).where(subscriptions.c.id == subscription_id))
    if done.rowcount == 0:
        raise NotFound(f"no subscription with id {subscription_id}")


def active_subscriptions(conn: Connection) -> list[dict[str, Any]]:
    """Active subscriptions with their secrets, for the dispatcher."""
    c = subscriptions.c
    query = select(subscriptions).where(c.active.is_(True)).order_by(c.id)
    return [row_dict(r) for r in conn.execute(query)]


# ── deliveries ──────────────────────────────────────────────────────────────────────────


def plan_deliveries(
    conn: Connection, alert_id: int, subscription_ids: Iterable[int], now: datetime
) -> list[int]:
    """A pending delivery per (alert, subscription), once: planning again adds nothing.

    Returns the ids of the alert's deliveries still pending, new or not, so a redelivered
    ``alert.sent`` event resumes them.
    """
    rows = [
        {"alert_id": alert_id, "subscription_id": s, "status": "pending", "attempts": 0,
         "next_attempt_at": now, "created_at": now}
        for s in subscription_ids
    ]
    insert_new(conn, deliveries, rows, key=("alert_id", "subscription_id"))
    c = deliveries.c
    query = select(c.id).where(c.alert_id == alert_id, c.status == "pending").order_by(c.id)
    return list(conn.scalars(query))


def claim_delivery(
    conn: Connection, delivery_id: int, now: datetime, lease: timedelta
) -> dict[str, Any] | None:
    """Take a due pending delivery for one attempt, or ``None`` when it is not ours to try.

    The claim moves ``next_attempt_at`` past the attempt's end and counts the attempt, in one
    conditional UPDATE: two dispatchers never send the same attempt, and a dispatcher that dies
    mid-attempt leaves a row that becomes due again when the lease runs out.
    """
    c = deliveries.c
    claimed = conn.execute(
        update(deliveries)
        .where(c.id == delivery_id, c.status == "pending", c.next_attempt_at <= now)
        .values(next_attempt_at=now + lease, attempts=c.attempts + 1)
    )
    if claimed.rowcount != 1:
        return None
    return row_dict(conn.execute(select(deliveries).where(c.id == delivery_id)).one())


def record_attempt(
    conn: Connection,
    delivery_id: int,
    *,
    status: str,
    response_status: int | None,
    error: str | None,
    now: datetime,
    retry_in_s: float | None = None,
) -> None:
    """Write how an attempt went: delivered, failed for good, or pending until the next try."""
    values: dict[str, Any] = {
        "status": status,
        "response_status": response_status,
        "error": error,
        "next_attempt_at": now + timedelta(seconds=retry_in_s) if retry_in_s is not None else None,
    }
    if status == "delivered":
        values["delivered_at"] = now
    conn.execute(update(deliveries).where(deliveries.c.id == delivery_id).values(**values))


def due_deliveries(
    conn: Connection, now: datetime, *, skip: Iterable[int] = (), limit: int = 1000
) -> list[int]:
    """Pending deliveries whose next attempt is due (oldest first), e.g. after a restart."""
    c = deliveries.c
    query = (
        select(c.id)
        .where(c.status == "pending", c.next_attempt_at <= now)
        .order_by(c.next_attempt_at, c.id)
        .limit(limit)
    )
    skip = list(skip)
    if skip:
        query = query.where(c.id.not_in(skip))
    return list(conn.scalars(query))


def get_delivery(conn: Connection, delivery_id: int) -> dict[str, Any]:
    row = conn.execute(select(deliveries).where(deliveries.c.id == delivery_id)).first()
    if row is None:
        raise NotFound(f"no delivery with id {delivery_id}")
    return row_dict(row)


def list_deliveries(
    conn: Connection,
    subscription_id: int,
    *,
    status: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """The delivery log of one subscription, newest first."""
    c = deliveries.c
    query = (
        select(deliveries)
        .where(c.subscription_id == subscription_id)
        .order_by(c.created_at.desc(), c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    if status:
        query = query.where(c.status == status)
    return [row_dict(r) for r in conn.execute(query)]


def retry_delivery(
    conn: Connection, subscription_id: int, delivery_id: int, now: datetime
) -> dict[str, Any]:
    """Put a failed delivery back in the queue with a fresh count of attempts."""
    c = deliveries.c
    done = conn.execute(
        update(deliveries)
        .where(c.id == delivery_id, c.subscription_id == subscription_id, c.status == "failed")
        .values(status="pending", attempts=0, next_attempt_at=now)
    )
    if done.rowcount == 0:
        found = get_delivery(conn, delivery_id)  # NotFound when it does not exist at all
        if found["subscription_id"] != subscription_id:
            raise NotFound(f"subscription {subscription_id} has no delivery {delivery_id}")
        raise Conflict(
            f"delivery {delivery_id} is {found['status']}; only failed deliveries are retried"
        )
    return get_delivery(conn, delivery_id)
