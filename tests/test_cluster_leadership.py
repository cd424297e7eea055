"""One active engine, hot standbys: real `haechi engine` processes on PostgreSQL and NATS.

Each test has a PostgreSQL database of its own (the engines' advisory lock is per database) and a
NATS prefix of its own (its engines share no durable consumer with any other test's).
"""

from __future__ import annotations

import pytest
from cluster_support import PATIENCE_S, TAKEOVER_BOUND_S, cluster_of_own, until
from sqlalchemy import text

pytestmark = pytest.mark.postgres


@pytest.fixture
def cluster():
    with cluster_of_own() as cluster:
        yield cluster


def two_engines(cluster):
    """Two engines started together; (leader, standby) once one runs the engine and the other waits."""
    engines = {"engine-a": cluster.engine("engine-a"), "engine-b": cluster.engine("engine-b")}

    def settled():
        leading = [n for n, p in engines.items() if "running engine:" in p.log]
        waiting = [n for n, p in engines.items() if "standing by: engine engine-" in p.log]
        return (leading, waiting) if leading and waiting else None

    leading, waiting = until(settled)
    assert len(leading) == 1 and waiting == [n for n in engines if n not in leading], (leading, waiting)
    return engines[leading[0]], leading[0], engines[waiting[0]], waiting[0]


def test_two_engines_started_together_one_leads_the_other_stands_by_and_cluster_status_shows_them(cluster):
    leader, leader_name, standby, standby_name = two_engines(cluster)
    standby.wait_for(f"standing by: engine {leader_name} leads")  # it names the leader from the cluster table
    assert "leading:" in leader.log and "leading:" not in standby.log
    assert "running engine:" not in standby.log  # a standby starts nothing of the engine
    assert cluster.leaders() == [leader_name]
    members = until(lambda: (m := cluster.members())[leader_name]["consumers"] and m)  # after a heartbeat
    assert members[standby_name]["leader"] is False and members[standby_name]["lag"] is None  # subscribes to nothing
    assert members[leader_name]["lag"] >= 0 and all(c.startswith("haechi-engine") for c in
                                                    members[leader_name]["consumers"])
    assert {m["roles"] for m in members.values()} == {"engine"}

    status = cluster.run("cluster", "status")
    status.popen.wait(PATIENCE_S)
    assert status.popen.returncode == 0, status.log
    rows = {name: line for line in status.log.splitlines() if line.startswith("│")
            for name in (leader_name, standby_name) if f" {name} " in line}
    assert "★" in rows[leader_name] and "★" not in rows[standby_name], status.log
    assert all("engine" in row and " up " in row for row in rows.values()), status.log
    assert f"leader: {leader_name} ★; 1 standing by" in status.log


def test_the_standby_leads_within_10_s_of_a_kill_9_of_the_leader(cluster):
    leader, _, standby, standby_name = two_engines(cluster)
    killed_at = leader.kill_9()
    locked = standby.wait_for(f"leading: engine {standby_name} holds the engine lock") - killed_at
    running = standby.wait_for("running engine:") - killed_at
    print(f"\ntakeover after kill -9 of the leader: lock taken in {locked:.2f} s, engine running in {running:.2f} s")
    assert running <= TAKEOVER_BOUND_S, standby.log
    assert cluster.leaders() == [standby_name]  # the killed leader's flag is gone with its lock

    status = cluster.run("cluster", "status")
    status.popen.wait(PATIENCE_S)
    assert f"leader: {standby_name} ★" in status.log, status.log


def test_a_leader_that_loses_its_lock_connection_stops_and_exits_for_its_supervisor(cluster):
    leader, leader_name, standby, standby_name = two_engines(cluster)
    with cluster.db.connect() as conn:  # what a database restart does to its session
        ended = conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  "WHERE application_name = :name"), {"name": f"haechi-engine {leader_name}"}).all()
    assert ended == [(True,)]
    leader.wait_for("lost the lead")
    assert leader.popen.wait(PATIENCE_S) == 75, leader.log  # EX_TEMPFAIL: restart me (as a standby)
    standby.wait_for("running engine:")
    assert cluster.leaders() == [standby_name]
