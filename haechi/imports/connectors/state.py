"""What the connectors remember in the DB: each station's newest observation, each connector's last run."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select

from haechi.store.schema import connector_stations, connector_status
from haechi.store.sql import row_dict


def last_times(conn: Connection, connector: str) -> dict[str, datetime]:
    """Station → newest observation time this connector has stored."""
    c = connector_stations.c
    return dict(conn.execute(select(c.station, c.last_time).where(c.connector == connector)).all())


def advance(conn: Connection, connector: str, newest: dict[str, datetime], now: datetime) -> None:
    """Move each station's newest time forward (never back: a late old page must not reopen a gap)."""
    known = last_times(conn, connector)
    for station, moment in newest.items():
        if station in known and known[station] >= moment:
            continue
        values = {"last_time": moment, "updated_at": now}
        if station in known:
            conn.execute(connector_stations.update().where(
                connector_stations.c.connector == connector, connector_stations.c.station == station).values(values))
        else:
            conn.execute(connector_stations.insert().values(connector=connector, station=station, **values))


def save_status(conn: Connection, connector: str, row: dict[str, Any]) -> None:
    c = connector_status.c
    known = conn.execute(select(c.ok_at).where(c.connector == connector)).first()
    if row.get("ok_at") is None and known is not None:
        row = row | {"ok_at": known.ok_at}
    if known is None:
        conn.execute(connector_status.insert().values(connector=connector, **row))
    else:
        conn.execute(connector_status.update().where(c.connector == connector).values(row))


def statuses(conn: Connection) -> dict[str, dict[str, Any]]:
    return {r.connector: row_dict(r) for r in conn.execute(select(connector_status))}


def station_counts(conn: Connection) -> dict[str, tuple[int, datetime | None, datetime | None]]:
    """Connector → (stations seen, oldest and newest of their newest observations)."""
    c = connector_stations.c
    query = select(c.connector, func.count(), func.min(c.last_time), func.max(c.last_time)).group_by(c.connector)
    return {name: (n, oldest, newest) for name, n, oldest, newest in conn.execute(query)}
