"""Zones, trips and consent changed through an API replica of a cluster: the replica has no care
service that watches anything, so it tells the leading engine (``care.changed``, durable on the
bus), which reloads the ward from the store. Without it a trip started through a replica would
raise no alerts, and an ended trip or a removed zone would still raise them.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import timedelta

import pytest
from care_support import ALWAYS, SCHOOL, family
from cluster_support import NATS_URL, Cluster, fresh_postgres, nats_prefix, until
from fastapi.testclient import TestClient
from shapely.geometry import mapping
from test_care_cluster import IN_SCHOOL, OUTSIDE, counted, device_token, position

from haechi.api.app import create_app
from haechi.bus.memory import InProcessBus
from haechi.care import repository
from haechi.care.service import CareService
from haechi.core.clock import utcnow
from haechi.core.settings import Settings
from haechi.model.events import CARE_CHANGED, PRIVATE, event
from haechi.runtime import Role
from haechi.store.schema import care_alerts, care_positions

ROUTE = {"type": "LineString", "coordinates": [[127.000, 37.500], [127.010, 37.500]]}  # ~880 m east
ON_ROUTE = (127.002, 37.500)
OFF_ROUTE = (127.005, 37.505)  # ~550 m north of the route: past its 100 m corridor
HOME_END = (127.010, 37.500)


def test_a_change_reloaded_twice_keeps_the_trip_watched_as_it_was(engine):
    """The bus delivers at least once: a second ``care.changed`` must not restart what is watched."""
    f = family(engine, zones=False)
    ward = f.ward["id"]

    async def scenario():
        bus = InProcessBus()
        service = CareService(engine, bus)
        await service.start()
        try:
            with engine.begin() as conn:
                repository.start_trip(conn, ward, {"route": ROUTE, "started_at": utcnow(),
                                                   "expected_at": utcnow() + timedelta(hours=1), "contacts": []})
                repository.add_zone(conn, ward, {"kind": "school", "name": "학교", "geometry": mapping(SCHOOL),
                                                 "schedule": ALWAYS})
            await bus.publish(event(CARE_CHANGED, {"ward_id": ward, "what": "trip"}))
            watch = service.trips[ward]
            watch.deviated = True
            await bus.publish(event(CARE_CHANGED, {"ward_id": ward, "what": "zone"}))
            assert service.trips[ward] is watch and watch.deviated  # the same watch, its state kept
            assert [z.name for z in service.geofence.zones if z.ward_id == ward] == ["학교"]
            with engine.begin() as conn:
                repository.withdraw_consent(conn, ward, utcnow())
            await bus.publish(event(CARE_CHANGED, {"ward_id": ward, "what": "consent"}))
            assert ward not in service.trips  # no consent: nothing watched
        finally:
            await service.stop()

    asyncio.run(scenario())
    assert CARE_CHANGED in PRIVATE  # which ward is watched: never on a live stream


# ── a cluster: an API replica, the leading engine, PostgreSQL and NATS ──────────────────────


def _replica(cluster: Cluster, url: str, prefix: str):
    return create_app(cluster.db, Settings(database_url=url, mqtt_url=None, care_mqtt_url=None, bus_url=NATS_URL,
                                           bus_prefix=prefix), roles={Role.API})


def _reloaded(engine, ward_id: int, times: int) -> None:
    """Wait until the engine has reloaded the ward ``times`` times (its log says so each time)."""
    until(lambda: engine.log.count(f"care ward {ward_id} reloaded") >= times)


def _post(client, auth, tracker: str, *where) -> None:
    """Positions a second apart, ending now, through the replica (queued for the engine)."""
    now = utcnow()
    for i, lon_lat in enumerate(where):
        at = now - timedelta(seconds=len(where) - 1 - i)
        queued = client.post("/api/v1/care/reports/position", json=position(lon_lat, at) | {"device": tracker},
                             headers=auth)
        assert queued.status_code == 202, queued.text


@dataclass
class Setting:
    """A family with no zones, its tracker's token, a leading care engine and an API replica's client."""

    cluster: Cluster
    engine: object
    client: TestClient
    ward: int
    tracker: str
    guardian: dict[str, str]
    device: dict[str, str]


@contextlib.contextmanager
def care_cluster():
    with fresh_postgres() as url, nats_prefix() as prefix:
        cluster = Cluster(url, prefix)
        try:
            f = family(cluster.db, zones=False)
            _, device = device_token(cluster.db)
            engine = cluster.engine("care-engine")
            engine.wait_for("running engine")
            api = _replica(cluster, url, prefix)
            with TestClient(api) as client:
                assert api.state.runtime.leading is False
                yield Setting(cluster, engine, client, f.ward["id"], f.devices["tracker"],
                              {"Authorization": f"Bearer {f.token}"}, {"Authorization": f"Bearer {device}"})
            assert "Traceback" not in engine.log
        finally:
            cluster.close()


@pytest.mark.postgres
def test_a_trip_started_and_ended_through_an_api_replica_is_watched_by_the_engine():
    with care_cluster() as c:
        db, client, ward, tracker, guardian = c.cluster.db, c.client, c.ward, c.tracker, c.guardian
        trip_body = {"route": ROUTE, "expected_at": (utcnow() + timedelta(hours=1)).isoformat()}
        started = client.post(f"/api/v1/care/wards/{ward}/trips", json=trip_body, headers=guardian)
        assert started.status_code == 201, started.text
        _reloaded(c.engine, ward, 1)
        _post(client, c.device, tracker, ON_ROUTE, OFF_ROUTE)
        until(lambda: counted(db, care_alerts, ward, kind="deviation"))
        _post(client, c.device, tracker, HOME_END)
        until(lambda: counted(db, care_alerts, ward, kind="arrived"))
        with db.begin() as conn:
            assert repository.get_trip(conn, started.json()["id"])["status"] == "arrived"

        second = client.post(f"/api/v1/care/wards/{ward}/trips", json=trip_body, headers=guardian)
        assert second.status_code == 201, second.text
        _reloaded(c.engine, ward, 2)
        ended = client.post(f"/api/v1/care/trips/{second.json()['id']}/end", headers=guardian)
        assert ended.status_code == 200 and ended.json()["status"] == "cancelled"
        _reloaded(c.engine, ward, 3)
        _post(client, c.device, tracker, ON_ROUTE, OFF_ROUTE)
        until(lambda: counted(db, care_positions, ward) == 5)  # the engine judged them
        assert counted(db, care_alerts, ward, kind="deviation") == 1  # none for the ended trip


@pytest.mark.postgres
def test_a_zone_added_through_an_api_replica_raises_the_left_alert_in_the_engine():
    with care_cluster() as c:
        db, client, ward, tracker, guardian = c.cluster.db, c.client, c.ward, c.tracker, c.guardian
        zone = client.post(f"/api/v1/care/wards/{ward}/zones", headers=guardian, json={
            "kind": "school", "name": "새 학교", "geometry": mapping(SCHOOL), "schedule": ALWAYS})
        assert zone.status_code == 201, zone.text
        _reloaded(c.engine, ward, 1)
        _post(client, c.device, tracker, IN_SCHOOL, OUTSIDE)
        until(lambda: counted(db, care_alerts, ward, kind="left_zone"))
        with db.begin() as conn:
            alerts = repository.alerts(conn, ward, with_position=False)
        [alert] = [a for a in alerts if a["kind"] == "left_zone"]
        assert alert["detail"]["zone"] == "새 학교"

        removed = client.delete(f"/api/v1/care/wards/{ward}/zones/{zone.json()['id']}", headers=guardian)
        assert removed.status_code == 204
        _reloaded(c.engine, ward, 2)
        _post(client, c.device, tracker, IN_SCHOOL, OUTSIDE)
        until(lambda: counted(db, care_positions, ward) == 4)
        assert counted(db, care_alerts, ward, kind="left_zone") == 1  # the removed zone: no alert
