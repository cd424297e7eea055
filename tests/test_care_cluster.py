"""Care device reports over HTTP in a cluster: an API replica does not judge them (it has no zones,
trips or geofence states), it hands them to the leading engine as ``care.reports`` events, durable
on the bus before it answers 202; the engine stores and judges each event once, however often the
bus delivers it, with the same dead letters, device binding and alerts as the route in one process.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from care_support import family
from cluster_support import NATS_URL, Cluster, fresh_postgres, nats_prefix, until
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select

from haechi.api.app import create_app
from haechi.api.sensing import _events
from haechi.bus.memory import InProcessBus
from haechi.bus.nats import EventStream, NatsBus
from haechi.care import repository
from haechi.care.reports import Activity, Position, Refused, Sos, from_wire, in_events, to_wire
from haechi.care.service import CareService
from haechi.core.clock import utcnow
from haechi.core.settings import Settings
from haechi.model.events import CARE_ALERT, CARE_REPORTS, event
from haechi.runtime import Role
from haechi.store import deadletters
from haechi.store.access import Principal, create_token
from haechi.store.schema import care_alerts, care_positions

OUTSIDE = (127.005, 37.505)  # between the school and home of care_support's family, outside both
IN_SCHOOL = (127.001, 37.501)
SOURCE = "http:/api/v1/care/reports/position"


def position(lon_lat, at=None) -> dict:
    return {"at": (at or utcnow()).isoformat(), "lon": lon_lat[0], "lat": lon_lat[1]}


def device_token(engine) -> tuple[int, str]:
    with engine.begin() as conn:
        return create_token(conn, f"tracker-{utcnow().timestamp()}", "device")


def counted(engine, table, ward_id: int, **where) -> int:
    query = select(func.count()).select_from(table).where(table.c.ward_id == ward_id)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    with engine.begin() as conn:
        return conn.execute(query).scalar()


# ── reports as they travel ────────────────────────────────────────────────────────────────


def test_reports_travel_as_they_were_read_in_events_of_bounded_size():
    now = utcnow()
    items = [Position("t-1", now, 127.001, 37.501, 8.5), Position("t-1", now, 127.0, 37.5), Sos("t-1", now, None, None),
             Activity("door-1", now, None), Activity("door-1", now, "motion"),
             Refused(None, "device", "device: must be the device's id", '{"device":3}')]
    [wire] = in_events(items)
    assert [from_wire(w) for w in wire] == items
    assert wire[0] == {"report": "position", "device": "t-1", "at": now.isoformat(), "lon": 127.001, "lat": 37.501,
                       "accuracy_m": 8.5}
    many = [Position(f"t-{i}", now, 127.0, 37.5) for i in range(3000)]
    groups = in_events(many, max_bytes=64 * 1024)
    assert len(groups) > 1 and [from_wire(w) for g in groups for w in g] == many  # all, in order
    huge = Refused("x" * 300_000, "at", "at: " + "9" * 300_000, "y" * 300_000)
    [[kept]] = in_events([huge])
    assert kept["device"] is None and len(kept["reason"]) == 500 and "not kept" in kept["payload"]


def reports_event(event_id: str, token_id: int | None, reports, received_at=None):
    return event(CARE_REPORTS, {"id": event_id, "source": SOURCE, "received_at": (received_at or utcnow()).isoformat(),
                                "token_id": token_id, "reports": [to_wire(r) for r in reports]})


def test_an_event_delivered_again_is_stored_and_alerted_once(engine):
    """The bus delivers at least once: an engine that died between its commit and its ack gets the
    event again (or its successor does). Nothing is stored twice, no SOS is raised twice."""
    f = family(engine)
    token_id, _ = device_token(engine)
    tracker = f.devices["tracker"]

    async def scenario():
        bus = InProcessBus()
        service = CareService(engine, bus)
        await service.start()
        try:
            now = utcnow()
            reports = [Position(tracker, now - timedelta(seconds=30), *IN_SCHOOL), Position(tracker, now, *OUTSIDE),
                       Sos(tracker, now, None, None), Position("ghost", now, *OUTSIDE)]
            for _ in range(3):
                await bus.publish(reports_event("once-1", token_id, reports, now))
        finally:
            await service.stop()

    asyncio.run(scenario())
    ward = f.ward["id"]
    assert counted(engine, care_positions, ward) == 2
    assert counted(engine, care_alerts, ward, kind="left_zone") == 1
    assert counted(engine, care_alerts, ward, kind="sos") == 1
    with engine.begin() as conn:
        letters = deadletters.pending(conn, source=SOURCE)
        assert [d["reason"] for d in letters] == ["device: unknown device 'ghost'; register it to a ward first"]
        assert repository.devices_by_ref(conn, [tracker])[tracker]["token_id"] == token_id  # bound, as over HTTP
        assert repository.purge(conn, utcnow() + timedelta(days=2))["report_events"] == 1  # purged with positions


def test_no_live_stream_shows_care_reports_not_even_to_staff():
    """They carry people's positions: only the ward's guardians read those (care.alert carries ids)."""

    async def scenario() -> str:
        bus = InProcessBus()
        feed = await bus.follow([">"], limit=100)
        texts = _events(feed, Principal(1, "operator", "operator"), None, None)
        await anext(texts)  # connected
        await bus.publish(reports_event("private-1", 1, [Position("t-1", utcnow(), *OUTSIDE)]))
        await bus.publish(event(CARE_ALERT, {"alert_id": 7, "kind": "left_zone", "at": utcnow().isoformat()}))
        shown = await anext(texts)
        await texts.aclose()
        return shown.decode() if isinstance(shown, bytes) else shown

    shown = asyncio.run(scenario())
    assert shown.startswith("id: ") and f"event: {CARE_ALERT}" in shown and CARE_REPORTS not in shown


def test_an_api_with_no_engine_and_no_bus_to_hand_reports_to_refuses_them(sqlite_engine):
    api = create_app(sqlite_engine, Settings(bus_url=None, mqtt_url=None, care_mqtt_url=None), roles={Role.API})
    _, token = device_token(sqlite_engine)
    with TestClient(api) as client:
        refused = client.post("/api/v1/care/reports/position", json=position(OUTSIDE) | {"device": "t-1"},
                              headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 503 and refused.headers["content-type"].startswith("application/problem+json")


# ── a cluster: an API replica, the leading engine, PostgreSQL and NATS ──────────────────────


def cluster_settings(database_url: str, prefix: str) -> Settings:
    return Settings(database_url=database_url, mqtt_url=None, care_mqtt_url=None, bus_url=NATS_URL,
                    bus_prefix=prefix)


@pytest.mark.postgres
def test_positions_posted_to_an_api_replica_raise_the_geofence_alert_in_the_engine():
    with fresh_postgres() as url, nats_prefix() as prefix:
        cluster = Cluster(url, prefix)
        try:
            f = family(cluster.db)
            tracker, ward = f.devices["tracker"], f.ward["id"]
            token_id, token = device_token(cluster.db)
            engine = cluster.engine("care-engine")
            engine.wait_for("running engine")  # its care service listens for reports from here on
            api = create_app(cluster.db, cluster_settings(url, prefix), roles={Role.API})
            auth = {"Authorization": f"Bearer {token}"}
            with TestClient(api) as client:
                assert api.state.runtime.leading is False
                now = utcnow()
                for report in (position(IN_SCHOOL, now - timedelta(seconds=30)), position(OUTSIDE, now)):
                    queued = client.post("/api/v1/care/reports/position", json=report | {"device": tracker},
                                         headers=auth)
                    assert (queued.status_code, queued.json()) == (202, {"queued": 1, "first_refusal": None})
                until(lambda: counted(cluster.db, care_alerts, ward, kind="left_zone"))
                # Still outside, and a device nobody registered: once the engine stored these (it takes
                # the events in order), it has judged everything before them.
                last = client.post("/api/v1/care/reports/position", headers=auth, json=[
                    position(OUTSIDE) | {"device": tracker}, position(OUTSIDE) | {"device": "ghost"},
                    position((127.0, 95.0)) | {"device": tracker}])
                assert last.status_code == 202 and last.json()["queued"] == 3
                assert last.json()["first_refusal"]["field"] == "lat"  # read at the API, as in one process
                until(lambda: counted(cluster.db, care_positions, ward) == 3)
                until(lambda: _letters(cluster.db) == 2)
            [alert] = _left_alerts(cluster.db, ward)  # exactly one, raised by the engine
            assert (alert["lon"], alert["lat"]) == OUTSIDE and alert["detail"]["zone"] == "해치초등학교"
            assert alert["detail"]["to"]["guardians"] == [f.guardian["id"]]
            with cluster.db.begin() as conn:
                assert repository.devices_by_ref(conn, [tracker])[tracker]["token_id"] == token_id
                reasons = sorted(d["reason"] for d in deadletters.pending(conn, source=SOURCE))
            assert reasons[0] == "device: unknown device 'ghost'; register it to a ward first"
            assert reasons[1].startswith("lat: lat 95.0 is out of range")
            announced = asyncio.run(_on_the_bus(prefix, CARE_ALERT))
            assert [e.data["alert_id"] for e in announced if e.data["kind"] == "left_zone"] == [alert["id"]]
            # The positions were handled: the event stream, kept 7 days, no longer holds them.
            assert asyncio.run(_on_the_bus(prefix, CARE_REPORTS)) == []
            assert "Traceback" not in engine.log
        finally:
            cluster.close()


def _left_alerts(engine, ward_id: int) -> list[dict]:
    with engine.begin() as conn:
        return [a for a in repository.alerts(conn, ward_id, with_position=True) if a["kind"] == "left_zone"]


def _letters(engine) -> int:
    with engine.begin() as conn:
        return len(deadletters.pending(conn, source=SOURCE))


async def _on_the_bus(prefix: str, event_type: str) -> list:
    """Every event of ``event_type`` the stream of this installation holds."""
    bus = await NatsBus.connect(NATS_URL, EventStream.of(prefix), name="test-reader")
    try:
        first = (await bus.js.stream_info(bus.stream.name)).state.first_seq  # erased events move it on
        feed = await bus.follow([event_type], after=str(first - 1), limit=1000)
        found = []
        while (e := await feed.next(1.0)) is not None:
            found.append(e)
        feed.close()
        return found
    finally:
        await bus.close()


@pytest.mark.postgres
def test_an_api_replica_answers_503_when_the_bus_does_not_take_the_reports(postgres_url):
    with nats_prefix() as prefix:
        db = create_engine(postgres_url)
        _, token = device_token(db)
        api = create_app(db, cluster_settings(postgres_url, prefix), roles={Role.API})
        with TestClient(api) as client:
            client.portal.call(api.state.bus.nc.close)  # NATS gone, as far as this replica can tell
            refused = client.post("/api/v1/care/reports/position", json=position(OUTSIDE) | {"device": "t-1"},
                                  headers={"Authorization": f"Bearer {token}"})
        db.dispose()
    assert refused.status_code == 503 and refused.headers["content-type"].startswith("application/problem+json")
    assert "NATS did not take event" in refused.json()["detail"]
