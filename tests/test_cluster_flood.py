"""The flood through a cluster, end to end: real `haechi` processes on PostgreSQL and NATS.

Two API replicas (`haechi serve` with a bus), two engines (one leads, one stands by) and two
workers, on a database of this test's own with the Seoul pack loaded and a NATS prefix of its
own (``HAECHI_BUS_PREFIX`` names both the event stream and the ingest queue, so no other test's
worker stores these readings; both streams are deleted afterwards). A webhook subscription
points at a receiver in this test.

The Hangang Bridge gauge (flood advisory 홍수주의보 at 8.5 m, lifted below 8.2 m held 1 h:
``warnings/criteria/river_flood.csv``) rises past its stage, each reading posted to the two
replicas in turn (a load balancer's round robin; a replica that does not answer is skipped, as a
load balancer's health check would). The leading engine is killed with ``-9`` right after the
crossing reading is acknowledged; a worker and an API replica are killed later; the river falls
and stays low for the lifting hour. Then: one CAP Alert, its Updates if any and one Cancel;
the receiver got each once; the standby led within 10 s; every acknowledged reading is stored.

Reading times are in the past, up to a few minutes ahead of the clock at most (QC refuses more
than 5 min): the crossing is under an hour old when the standby takes over, so the new leader,
rebuilding from the DB, still judges it live (``warnings.service.LATE_READINGS``), and the
lifting hour after it ends near now.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from cluster_support import (
    PATIENCE_S,
    TAKEOVER_BOUND_S,
    Cluster,
    Process,
    free_port,
    fresh_postgres,
    nats_prefix,
    ready,
    until,
)
from sqlalchemy import select
from test_channels_support import Receiver

from haechi.alerts.webhooks import DELIVERY_HEADER
from haechi.store import access, sensing
from haechi.store.schema import alerts, deliveries, observations

pytestmark = pytest.mark.postgres

GAUGE = "Hangang Bridge water level"  # gauges.csv ref 1018683: advisory 8.5 m, lifted below 8.2 m for 1 h
ADVISORY_M, LIFT_BELOW_M = 8.5, 8.2
#: The crossing's time before the clock at the start: under LATE_READINGS (1 h) with a few minutes
#: to spare for the cluster's start and the takeover, so the lifting hour after it ends by now + 4 min.
CROSSING_AGO = timedelta(minutes=56)
#: (minutes after the crossing, metres): the rise, the crossing, a short crest, the fall below the
#: lifting level at +8 min and 50 min more below it (with the 10-minute window, the lifting hour).
RISE = [(-25, 7.9), (-20, 8.0), (-15, 8.1), (-10, 8.25), (-5, 8.4)]
CROSSING = (0, 8.6)
CREST = [(2, 8.8), (4, 9.0), (6, 8.7)]
FALL = [(8, 8.1), *((m, round(8.0 - (m - 13) / 150, 3)) for m in range(13, 61, 5))]
#: How long the processes get to stop cleanly at the end before they are killed.
STOP_S = 20.0
LOCAL_WEBHOOKS = {"webhook_allow_http": "true", "webhook_allowed_networks": json.dumps(["127.0.0.1/32"])}


class Timeline:
    """What happened when, in seconds from the start, printed at the end."""

    def __init__(self) -> None:
        self.start, self.entries = time.monotonic(), []

    def note(self, what: str, at: float | None = None) -> None:
        self.entries.append(((at or time.monotonic()) - self.start, what))

    def __str__(self) -> str:
        return "\n".join(f"  {at:7.2f} s  {what}" for at, what in sorted(self.entries))


class Replicas:
    """The API replicas in turn; a replica that does not answer is skipped for the next one."""

    def __init__(self, ports: list[int], token: str) -> None:
        self.urls = [f"http://127.0.0.1:{p}" for p in ports]
        self.headers = {"Authorization": f"Bearer {token}"}
        self.turn = 0
        self.acknowledged: list[tuple[datetime, float, str]] = []  # (time, metres, replica) of each 202

    def post(self, stream: int, at: datetime, metres: float) -> str:
        body = [{"datastream_id": stream, "phenomenon_time": at.isoformat(), "result": metres}]
        for _ in range(len(self.urls)):
            url = self.urls[self.turn % len(self.urls)]
            self.turn += 1
            try:
                answer = httpx.post(f"{url}/api/v1/observations", json=body, headers=self.headers, timeout=30)
            except httpx.TransportError:
                continue  # down: the next replica takes it
            assert answer.status_code == 202, answer.text
            self.acknowledged.append((at, metres, url))
            return url
        raise AssertionError(f"no replica took the reading of {at}")


def test_a_flood_through_two_apis_two_engines_and_two_workers_with_kills_gives_each_alert_once():
    timeline = Timeline()
    with fresh_postgres() as url, nats_prefix() as prefix, Receiver() as receiver:
        cluster = Cluster(url, prefix)
        try:
            run_flood(cluster, receiver, timeline)
        finally:
            print(f"\ntimeline of the flood through the cluster:\n{timeline}")
            stop_all(cluster.processes)
            cluster.db.dispose()


def stop_all(processes: list[Process]) -> None:
    """SIGTERM to every process still running, then ``kill -9`` to any that has not ended in time."""
    for process in processes:
        if process.popen.poll() is None:
            process.popen.terminate()
    deadline = time.monotonic() + STOP_S
    for process in processes:
        try:
            process.popen.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.popen.kill()
            process.popen.wait()


def run_flood(cluster: Cluster, receiver: Receiver, timeline: Timeline) -> None:
    load = cluster.run("city", "load", "seoul")
    assert load.popen.wait(PATIENCE_S) == 0, load.log
    timeline.note("Seoul pack loaded")
    gauge, device, operator = setup(cluster)

    ports = [free_port(), free_port()]
    apis = [cluster.run("serve", "--port", str(p), **LOCAL_WEBHOOKS) for p in ports]
    engines = {n: cluster.run("engine", "--name", n, **LOCAL_WEBHOOKS) for n in ("engine-a", "engine-b")}
    workers = [cluster.run("worker") for _ in range(2)]
    for port in ports:
        until(lambda port=port: ready(port))
    leader_name = until(lambda: next(iter(cluster.leaders()), None))
    leader = engines[leader_name]
    standby_name, standby = next((n, p) for n, p in engines.items() if n != leader_name)
    leader.wait_for("running engine:")
    standby.wait_for(f"standing by: engine {leader_name} leads")
    for worker in workers:
        worker.wait_for("worker consuming")
    timeline.note(f"cluster up: APIs on {ports}, {leader_name} leads, {standby_name} stands by, 2 workers")

    subscribe(ports[0], operator, receiver.url)
    replicas = Replicas(ports, device)
    crossing_at = datetime.now(UTC).replace(second=0, microsecond=0) - CROSSING_AGO

    def post(points) -> None:
        for minutes, metres in points:
            replicas.post(gauge, crossing_at + timedelta(minutes=minutes), metres)

    post(RISE)
    until(lambda: stored(cluster, gauge, replicas.acknowledged) == len(replicas.acknowledged))
    timeline.note(f"river rising: {len(RISE)} readings up to {RISE[-1][1]} m stored")

    post([CROSSING])
    killed_at = leader.kill_9()
    timeline.note(f"crossing {CROSSING[1]} m (advisory {ADVISORY_M} m) acknowledged; leader {leader_name} killed -9",
                  killed_at)
    took_over = standby.wait_for("running engine:") - killed_at
    timeline.note(f"{standby_name} runs the engine ({took_over:.2f} s after the kill)", killed_at + took_over)
    print(f"\ntakeover after kill -9 of the leading engine: {took_over:.2f} s")
    assert took_over <= TAKEOVER_BOUND_S, standby.log
    assert until(lambda: cluster.leaders() == [standby_name])

    issued = until(lambda: messages(cluster, "Alert"))
    timeline.note(f"CAP Alert stored: {issued[0]}")
    rebuilt = standby.wait_for("warnings engine rebuilt")
    said = next(line for at, line in standby.lines if at == rebuilt and "warnings engine rebuilt" in line)
    timeline.note(f"{standby_name}: {said[said.index('warnings engine rebuilt'):].strip()}", rebuilt)

    post(CREST[:2])
    workers[0].kill_9()
    timeline.note("worker 1 killed -9")
    post(CREST[2:])
    apis[1].kill_9()
    timeline.note(f"API replica on port {ports[1]} killed -9")
    post(FALL)
    timeline.note(f"river fell below {LIFT_BELOW_M} m and stayed for the lifting hour: {len(FALL)} readings")

    until(lambda: stored(cluster, gauge, replicas.acknowledged) == len(replicas.acknowledged), PATIENCE_S * 2)
    timeline.note(f"all {len(replicas.acknowledged)} acknowledged readings stored")
    cancel = until(lambda: messages(cluster, "Cancel"), PATIENCE_S * 2)
    timeline.note(f"CAP Cancel stored: {cancel[0]}")
    until(lambda: all_delivered(cluster), PATIENCE_S * 2)
    timeline.note(f"every delivery done; the receiver got {len(receiver.requests)} requests")

    check_alerts(cluster, receiver)


def setup(cluster: Cluster) -> tuple[int, str, str]:
    """The gauge's datastream, a device token and an operator token."""
    with cluster.db.begin() as conn:
        gauge = next(p["id"] for p in sensing.stream_profiles(conn) if p["name"] == GAUGE)
        _, device = access.create_token(conn, "gauge gateway", "device")
        _, operator = access.create_token(conn, "duty officer", "operator")
    return gauge, device, operator


def subscribe(port: int, token: str, url: str) -> None:
    answer = httpx.post(f"http://127.0.0.1:{port}/api/v1/subscriptions", timeout=30,
                        json={"name": "flood receiver", "url": url},  # every area: the flood's districts
                        headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 201, answer.text


def stored(cluster: Cluster, stream: int, acknowledged: list[tuple[datetime, float, str]]) -> int:
    """How many of the acknowledged readings are in the observations table, time and value."""
    with cluster.db.connect() as conn:
        rows = conn.execute(select(observations.c.phenomenon_time, observations.c.result)
                            .where(observations.c.datastream_id == stream)).all()
    found = {(t.astimezone(UTC), round(r, 3)) for t, r in rows}
    return sum((at, round(metres, 3)) in found for at, metres, _ in acknowledged)


def messages(cluster: Cluster, msg_type: str) -> list[str]:
    """Identifiers of the river-flood alerts of that CAP msgType, in the order stored."""
    with cluster.db.connect() as conn:
        return list(conn.execute(select(alerts.c.identifier).where(
            alerts.c.hazard == "river_flood", alerts.c.msg_type == msg_type).order_by(alerts.c.id)).scalars())


def all_delivered(cluster: Cluster) -> bool:
    """Every flood alert has its delivery row, and none is still pending."""
    with cluster.db.connect() as conn:
        flood = conn.execute(select(alerts.c.id).where(alerts.c.hazard == "river_flood")).scalars().all()
        done = conn.execute(select(deliveries.c.alert_id, deliveries.c.status)).all()
    return bool(flood) and {a for a, _ in done} >= set(flood) and all(s == "delivered" for _, s in done)


def check_alerts(cluster: Cluster, receiver: Receiver) -> None:
    with cluster.db.connect() as conn:
        rows = conn.execute(select(alerts.c.identifier, alerts.c.msg_type, alerts.c.status).where(
            alerts.c.hazard == "river_flood").order_by(alerts.c.id)).all()
    kinds = Counter(kind for _, kind, _ in rows)
    print("alerts stored: " + ", ".join(f"{identifier} ({kind})" for identifier, kind, _ in rows))
    assert kinds["Alert"] == 1 and kinds["Cancel"] == 1, rows
    assert set(kinds) <= {"Alert", "Update", "Cancel"} and {s for *_, s in rows} == {"Actual"}, rows
    assert len({identifier for identifier, *_ in rows}) == len(rows)

    bodies = [(r.json()["alert"]["identifier"], _header(r.headers, DELIVERY_HEADER)) for r in receiver.requests]
    sent = Counter(identifier for identifier, _ in bodies)
    print("webhook received: " + ", ".join(f"{identifier} ×{n}" for identifier, n in sent.items()))
    # a resend of one delivery (same delivery id: the dispatcher died before writing the answer) is
    # that delivery once to a receiver that deduplicates; every other request is a delivery of its own
    delivered = Counter(identifier for identifier, _ in set(bodies))
    assert delivered == Counter(identifier for identifier, *_ in rows), (sent, rows)


def _header(headers: dict[str, str], name: str) -> str | None:
    return next((value for key, value in headers.items() if key.lower() == name.lower()), None)
