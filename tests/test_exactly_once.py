"""Every public alert exactly once: the same readings judged twice (two leaders), two engines
recording the same change at once, and an alert committed by a leader that died before it could
publish it — delivered by the next dispatcher from the outbox, once, to a real HTTP receiver.

On SQLite and PostgreSQL; the races on PostgreSQL, where a cluster's engines meet.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from failover_support import DISTRICT, Process, count, dust_station, rows, series, start_of_minute, stored_batch
from test_channels_support import LOCAL_WEBHOOKS, Receiver, subscription_row

from haechi.alerts import webhooks
from haechi.alerts.channels import AlertDispatcher
from haechi.bus.memory import InProcessBus
from haechi.core.clock import utcnow
from haechi.model.hazards import Change
from haechi.store.schema import alerts, deliveries, subscriptions, warnings
from haechi.warnings import service as warnings_service
from haechi.warnings.criteria import load_criteria
from haechi.warnings.service import record_change

SENDER = "haechi@seoul.go.kr"
ON_POSTGRES = pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
FAST = webhooks.Backoff(base_s=0.01, factor=2, cap_s=0.05, max_attempts=3)
AREA = f"district:{DISTRICT}"


def dust(level: str):
    [criterion] = [c for c in load_criteria() if (c.hazard, c.property, c.level) == ("fine_dust", "pm10", level)]
    return criterion


def two_hours_at_the_advisory():
    """PM10 ≥ 150 µg/m³ every 10 minutes for two hours: the advisory is issued at the 60-minute reading."""
    return series(start_of_minute() - timedelta(minutes=100), [160, 165, 170, 175, 172, 168, 171, 180, 176, 174])


# ── the same readings judged twice ──────────────────────────────────────────────────────


def test_the_same_stored_batch_judged_by_two_engines_gives_one_warning_and_one_alert(engine):
    stream = dust_station(engine)

    async def run():
        batch = await stored_batch(engine, stream, two_hours_at_the_advisory())
        first, second = await Process(engine).start(), await Process(engine).start()
        await first.warnings.on_stored(batch)
        await second.warnings.on_stored(batch)  # the next leader gets the unacknowledged batch again
        await second.warnings.on_stored(batch)  # … and a redelivery on top
        return first, second

    first, second = asyncio.run(run())
    [warning], [alert] = rows(engine)
    assert (warning["hazard"], warning["area_key"], warning["level"]) == ("fine_dust", AREA, "advisory")
    assert alert["identifier"].endswith(".issue") and alert["warning_id"] == warning["id"]
    assert [a["identifier"] for a in first.alerts_sent()] == [alert["identifier"]]
    assert second.published == []  # found recorded: not announced a second time


def test_reprocessing_the_same_readings_yields_the_same_rows(engine):
    stream = dust_station(engine)
    readings = two_hours_at_the_advisory()

    async def run():
        batch = await stored_batch(engine, stream, readings)
        for _ in range(3):  # three engines, one after the other, each from scratch
            await (await Process(engine).start()).warnings.on_stored(batch)

    asyncio.run(run())
    before = rows(engine)
    asyncio.run(run())
    assert rows(engine) == before and (len(before[0]), len(before[1])) == (1, 1)


@ON_POSTGRES
def test_two_engines_recording_the_same_change_at_once_store_it_once(engine):
    """Both may find nothing recorded, both write the warning and the alert: the unique identifier
    refuses the second alert, its transaction (its warning row too) rolls back, and it returns the first."""
    stream = dust_station(engine)
    at = start_of_minute() - timedelta(minutes=30)
    chain = [Change("issue", "fine_dust", AREA, dust("advisory"), None, 160.0, at, stream),
             Change("update", "fine_dust", AREA, dust("warning"), dust("advisory"), 310.0, at + timedelta(hours=1),
                    stream),
             Change("cancel", "fine_dust", AREA, None, dust("warning"), 20.0, at + timedelta(hours=2), stream)]
    for change in chain:
        for _ in range(3):  # the same change, raced again: still once
            gate = threading.Barrier(2)

            def write(_, change=change, gate=gate):
                gate.wait()
                return record_change(engine, change, sender=SENDER, now=utcnow())

            with ThreadPoolExecutor(2) as pool:
                results = list(pool.map(write, range(2)))
            assert len({r.alert["id"] for r in results}) == 1
    found_warnings, found_alerts = rows(engine)
    assert [w["status"] for w in found_warnings] == ["cancelled"]
    assert [a["msg_type"] for a in found_alerts] == ["Alert", "Update", "Cancel"]


def test_a_refused_duplicate_is_read_back_in_a_fresh_transaction(engine, monkeypatch):
    """The race made deterministic: the other engine commits between our check and our insert."""
    stream = dust_station(engine)
    change = Change("issue", "fine_dust", AREA, dust("advisory"), None, 160.0,
                    start_of_minute() - timedelta(minutes=30), stream)
    first = record_change(engine, change, sender=SENDER, now=utcnow())
    real, checks = warnings_service._already, []

    def late_check(*args):
        checks.append(args)
        return None if len(checks) == 1 else real(*args)  # the first look comes before the other commit

    monkeypatch.setattr(warnings_service, "_already", late_check)
    again = record_change(engine, change, sender=SENDER, now=utcnow())
    assert (again.new, again.alert["id"], again.warning["warning_id"]) == (
        False, first.alert["id"], first.warning["warning_id"])
    assert len(checks) == 2 and (count(engine, warnings), count(engine, alerts)) == (1, 1)


# ── deliveries through the outbox ───────────────────────────────────────────────────────


def subscribe(engine, name: str, url: str) -> int:
    with engine.begin() as conn:
        return conn.execute(subscriptions.insert().values(**subscription_row(name, url))).inserted_primary_key[0]


def dispatcher(engine) -> AlertDispatcher:
    return AlertDispatcher(engine, InProcessBus(), public_url="https://haechi.example", backoff=FAST,
                           policy=LOCAL_WEBHOOKS, sweep_interval_s=0.05)


def committed_but_never_published(engine, stream: int, minutes_ago: int) -> int:
    """What an engine that died right after its commit leaves: the alert and its pending deliveries."""
    at = start_of_minute() - timedelta(minutes=minutes_ago)
    recorded = record_change(engine, Change("issue", "fine_dust", f"district:{DISTRICT}", dust("advisory"), None,
                                            160.0, at, stream), sender=SENDER, now=utcnow())
    return recorded.alert["id"]


def test_an_alert_committed_but_never_published_is_delivered_once_by_the_next_dispatcher(engine):
    stream = dust_station(engine)
    with Receiver() as receiver:
        sub = subscribe(engine, "sns gateway", receiver.url + "/hook")
        alert_id = committed_but_never_published(engine, stream, 30)
        with engine.connect() as conn:
            [planned] = [dict(r._mapping) for r in conn.execute(deliveries.select())]
        assert (planned["alert_id"], planned["subscription_id"], planned["status"]) == (alert_id, sub, "pending")

        async def next_leader():
            d = dispatcher(engine)
            await d.start()  # resumes every pending delivery at start
            await d.idle()
            await d.resume()  # and a sweep afterwards finds nothing left to send
            await d.idle()
            await d.stop()

        asyncio.run(next_leader())
        asyncio.run(next_leader())  # and the leader after it: nothing again

    [request] = receiver.requests
    assert request.json()["alert"]["id"] == alert_id
    assert request.headers["X-Haechi-Delivery"] == str(planned["id"])
    with engine.connect() as conn:
        [done] = [dict(r._mapping) for r in conn.execute(deliveries.select())]
    assert (done["status"], done["attempts"]) == ("delivered", 1)


def test_two_dispatchers_sweeping_at_once_deliver_each_alert_to_each_receiver_once(engine):
    stream = dust_station(engine)
    with Receiver() as receiver:
        subs = [subscribe(engine, f"gateway {n}", f"{receiver.url}/hook/{n}") for n in range(3)]
        alert_ids = [committed_but_never_published(engine, stream, 10 * n + 5) for n in range(4)]

        async def two_leaders_at_once():
            pair = [dispatcher(engine), dispatcher(engine)]
            await asyncio.gather(*(d.start() for d in pair))
            for _ in range(3):  # several sweeps each, overlapping
                await asyncio.gather(*(d.resume() for d in pair))
                await asyncio.gather(*(d.idle() for d in pair))
            for d in pair:
                await d.stop()

        asyncio.run(two_leaders_at_once())

    got = Counter((r.path, r.json()["alert"]["id"]) for r in receiver.requests)
    assert got == Counter({(f"/hook/{n}", a): 1 for n in range(len(subs)) for a in alert_ids})
    with engine.connect() as conn:
        assert {r.status for r in conn.execute(deliveries.select())} == {"delivered"}
