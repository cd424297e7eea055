"""Moving an incident along its lifecycle: the check, the guarded update, the entry in its history.

Below incidents, dispatch and drones, so that none of them needs another to move an incident:
dispatching moves it to ``responding`` exactly as an operator would, and closing
(``incidents.change_status``) moves it the same way, then gives back its units and drones.
"""

from __future__ import annotations

from datetime import datetime

from haechi.core.clock import utcnow
from haechi.core.errors import Conflict
from haechi.store.access import Principal
from haechi.store.incidents import actor_name, add_event, change_incident, get_incident

from . import lifecycle


def move_incident(conn, incident_id: int, status: str, *, actor: str | Principal,
                  note: str | None = None) -> datetime:
    """Move an incident to ``status`` if its lifecycle allows it (409 naming the allowed next states).

    Returns the time of the move, which is also the time of its entry in the history.
    """
    incident = get_incident(conn, incident_id, for_update=True)
    lifecycle.check(lifecycle.INCIDENT, incident["status"], status)
    now = utcnow()
    values = {"status": status, "updated_at": now}
    if status == "closed":
        values["closed_at"] = now
    if not change_incident(conn, incident_id, values, was={"status": incident["status"]}):
        raise Conflict(f"incident {incident_id} changed meanwhile; reload it and try again", field="body.status")
    add_event(conn, {"incident_id": incident_id, "at": now, "actor": actor_name(actor), "action": "status",
                     "from_value": incident["status"], "to_value": status, "note": note})
    return now
