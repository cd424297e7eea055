"""The webhook dispatcher against a real local HTTP receiver, on SQLite and PostgreSQL.

Retries use a backoff of milliseconds so the tests run fast; nothing asserts on wall-clock time.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
from sqlalchemy import insert, select, update
from test_channels_support import (
    LOCAL_WEBHOOKS,
    Receiver,
    free_port,
    insert_alert,
    subscription_row,
)

from haechi.alerts import webhooks
from haechi.alerts.channels import AlertDispatcher
from haechi.bus.memory import InProcessBus
from haechi.core.clock import utcnow
from haechi.core.egress import WebhookPolicy
from haechi.core.events import Event
from haechi.store import alerting
from haechi.store.schema import deliveries, subscriptions

FAST = webhooks.Backoff(base_s=0.01, factor=2, cap_s=0.05, max_attempts=3)
PUBLIC = "https://haechi.example"


def subscribe(engine, name, url, **kw) -> int:
    with engine.begin() as conn:
        row = subscription_row(name, url, **kw)
        return conn.execute(insert(subscriptions).values(**row)).inserted_primary_key[0]


def secret_of(engine, subscription_id) -> str:
    with engine.begin() as conn:
        return alerting.get_subscription(conn, subscription_id, with_secret=True)["secret"]


def log_of(engine) -> dict[int, dict]:
    """Every delivery row, by subscription id."""
    with engine.begin() as conn:
        return {r.subscription_id: r._asdict() for r in conn.execute(select(deliveries))}


def run(engine, scenario: Callable[[AlertDispatcher, InProcessBus], Awaitable[None]], **kw) -> None:
    """Run ``scenario`` with a started dispatcher on an in-process bus, then stop it."""

    async def main() -> None:
        bus = InProcessBus()
        kw.setdefault("backoff", FAST)
        kw.setdefault("policy", LOCAL_WEBHOOKS)
        dispatcher = AlertDispatcher(engine, bus, public_url=PUBLIC, **kw)
        await dispatcher.start()
        try:
            await scenario(dispatcher, bus)
        finally:
            await dispatcher.stop()

    asyncio.run(main())


def sent(alert_id: int) -> Event:
    return Event("alert.sent", {"id": alert_id, "status": "Actual"})


async def publish_and_wait(dispatcher: AlertDispatcher, bus: InProcessBus, alert_id: int) -> None:
    await bus.publish(sent(alert_id))
    await dispatcher.idle()


# ── delivery ────────────────────────────────────────────────────────────────────────────


def test_delivery_is_signed_with_the_subscription_secret(engine):
    with Receiver() as receiver:
        sub = subscribe(
            engine, "sns", receiver.url + "/hook", languages=["en"], audiences=["elderly"]
        )
        alert_id = insert_alert(engine, "rain-1", codes=["1168010100"])
        run(engine, lambda d, b: publish_and_wait(d, b, alert_id))

    [request] = receiver.requests
    assert request.path == "/hook"
    body, headers = request.body, request.headers
    assert webhooks.verify(secret_of(engine, sub), body, headers["X-Haechi-Signature"])
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Haechi-Event"] == "alert.sent"
    assert headers["X-Haechi-Timestamp"].isdigit()
    log = log_of(engine)[sub]
    assert headers["X-Haechi-Delivery"] == str(log["id"])
    document = json.loads(body)
    assert document["alert"]["id"] == alert_id
    assert document["alert"]["links"]["cap_xml"] == f"{PUBLIC}/api/v1/alerts/{alert_id}.xml"
    assert [i["language"] for i in document["alert"]["cap"]["info"]] == ["en-US"]
    assert list(document["alert"]["cap"]["guidance"]) == ["elderly"]
    assert (log["status"], log["attempts"], log["response_status"]) == ("delivered", 1, 200)
    assert log["delivered_at"] is not None and log["error"] is None


def test_failures_are_retried_until_the_receiver_accepts(engine):
    with Receiver().fail_first(2, 500) as receiver:
        sub = subscribe(engine, "gateway", receiver.url)
        alert_id = insert_alert(engine, "rain-1")
        run(engine, lambda d, b: publish_and_wait(d, b, alert_id))

    assert len(receiver.requests) == 3
    # One delivery, the same id and body each time, each attempt signed.
    assert len({r.headers["X-Haechi-Delivery"] for r in receiver.requests}) == 1
    assert len({r.body for r in receiver.requests}) == 1
    log = log_of(engine)[sub]
    assert (log["status"], log["attempts"], log["response_status"]) == ("delivered", 3, 200)


def test_a_receiver_that_keeps_failing_is_given_up_on_and_logged(engine):
    with Receiver(default=503) as receiver:
        sub = subscribe(engine, "down", receiver.url)
        alert_id = insert_alert(engine, "rain-1")
        run(engine, lambda d, b: publish_and_wait(d, b, alert_id))

    assert len(receiver.requests) == FAST.max_attempts
    log = log_of(engine)[sub]
    assert (log["status"], log["attempts"], log["response_status"]) == ("failed", 3, 503)
    assert log["error"] == "gave up after 3 attempts; last: HTTP 503: refused with 503"
    assert log["next_attempt_at"] is None and log["delivered_at"] is None


def test_an_unreachable_receiver_is_retried_then_logged_as_a_network_error(engine):
    sub = subscribe(engine, "nobody", f"http://127.0.0.1:{free_port()}/hook")
    alert_id = insert_alert(engine, "rain-1")
    run(engine, lambda d, b: publish_and_wait(d, b, alert_id))

    log = log_of(engine)[sub]
    assert (log["status"], log["attempts"], log["response_status"]) == ("failed", 3, None)
    assert log["error"].startswith("gave up after 3 attempts; last: ConnectError")


@pytest.mark.parametrize(("policy", "host", "reason"), [
    # The name resolves to this host now (DNS rebinding, or a subscription stored before the check).
    (WebhookPolicy(allow_http=True), "localhost",
     "refused by Haechi: localhost resolves to 127.0.0.1, a loopback address"),
    (WebhookPolicy(), "127.0.0.1", "refused by Haechi: the URL must use https, not http"),
])
def test_a_delivery_where_webhooks_may_not_go_is_refused_and_logged_as_failed(engine, policy, host, reason):
    with Receiver() as receiver:
        sub = subscribe(engine, "inside", receiver.url.replace("127.0.0.1", host) + "/hook")
        alert_id = insert_alert(engine, "rain-1")
        run(engine, lambda d, b: publish_and_wait(d, b, alert_id), policy=policy)

    assert receiver.requests == []
    log = log_of(engine)[sub]
    assert (log["status"], log["attempts"], log["response_status"]) == ("failed", 1, None)  # not retried
    assert log["error"].startswith(reason)


@pytest.mark.parametrize("status", [400, 404, 410])
def test_a_client_error_is_final_and_not_retried(engine, status):
    with Receiver(default=status) as receiver:
        sub = subscribe(engine, "wrong", receiver.url)
        alert_id = insert_alert(engine, "rain-1")
        run(engine, lambda d, b: publish_and_wait(d, b, alert_id))

    assert len(receiver.requests) == 1
    log = log_of(engine)[sub]
    assert (log["status"], log["attempts"], log["response_status"]) == ("failed", 1, status)
    assert log["error"] == f"HTTP {status}: refused with {status}"


def test_too_many_requests_is_retried(engine):
    with Receiver(retry_after="0").fail_first(1, 429) as receiver:
        sub = subscribe(engine, "busy", receiver.url)
        alert_id = insert_alert(engine, "rain-1")
        run(engine, lambda d, b: publish_and_wait(d, b, alert_id))

    assert [len(receiver.requests), log_of(engine)[sub]["status"]] == [2, "delivered"]


# ── who gets what ───────────────────────────────────────────────────────────────────────


def test_drills_reach_only_subscribers_who_opted_in(engine):
    with Receiver() as actual_only, Receiver() as drills_too:
        quiet = subscribe(engine, "actual-only", actual_only.url)
        opted = subscribe(engine, "drills-too", drills_too.url, include_exercises=True)
        drill = insert_alert(engine, "drill-1", status="Exercise")
        run(engine, lambda d, b: publish_and_wait(d, b, drill))

    assert actual_only.requests == []
    assert set(log_of(engine)) == {opted}  # not even a delivery row for the other
    assert quiet not in log_of(engine)
    document = drills_too.requests[0].json()
    assert document["alert"]["status"] == "Exercise" and document["alert"]["exercise"] is True


def test_subscriptions_get_alerts_meeting_their_areas(engine):
    with Receiver() as receiver:
        subs = {
            name: subscribe(engine, name, f"{receiver.url}/{name}", area_codes=codes)
            for name, codes in {
                "gangnam": ["11680"], "seoul": ["11"], "everywhere": [], "jongno": ["11110"],
                "yeoksam": ["1168010100"], "daechi": ["1168010600"],
            }.items()
        }
        alert_id = insert_alert(engine, "rain-1", codes=["1168010100"])
        run(engine, lambda d, b: publish_and_wait(d, b, alert_id))

    reached = {r.path.lstrip("/") for r in receiver.requests}
    assert reached == {"gangnam", "seoul", "everywhere", "yeoksam"}
    assert set(log_of(engine)) == {subs[n] for n in reached}


def test_inactive_subscriptions_get_nothing(engine):
    with Receiver() as receiver:
        subscribe(engine, "paused", receiver.url, active=False)
        alert_id = insert_alert(engine, "rain-1")
        run(engine, lambda d, b: publish_and_wait(d, b, alert_id))
    assert receiver.requests == [] and log_of(engine) == {}


def test_xml_subscribers_receive_the_signed_cap_message(engine):
    with Receiver() as receiver:
        sub = subscribe(engine, "cap", receiver.url, format="xml")
        alert_id = insert_alert(engine, "rain-1")
        run(engine, lambda d, b: publish_and_wait(d, b, alert_id))
    [request] = receiver.requests
    assert request.headers["Content-Type"] == "application/cap+xml"
    assert request.body.startswith(b"<?xml")
    signature = request.headers["X-Haechi-Signature"]
    assert webhooks.verify(secret_of(engine, sub), request.body, signature)


# ── never blocked, never lost ───────────────────────────────────────────────────────────


def test_a_slow_receiver_does_not_hold_up_the_alert_or_other_receivers(engine):
    with Receiver() as slow, Receiver() as fast:
        slow.gate.clear()  # holds its answers until released
        slow_sub = subscribe(engine, "slow", slow.url)
        fast_sub = subscribe(engine, "fast", fast.url)
        alert_id = insert_alert(engine, "rain-1")

        async def scenario(dispatcher, bus):
            await bus.publish(sent(alert_id))  # returns with both deliveries planned
            assert set(log_of(engine)) == {slow_sub, fast_sub}
            while log_of(engine)[fast_sub]["status"] != "delivered":
                await asyncio.sleep(0.01)
            assert log_of(engine)[slow_sub]["status"] == "pending"
            slow.gate.set()
            await dispatcher.idle()

        run(engine, scenario)
    assert {r["status"] for r in log_of(engine).values()} == {"delivered"}


def test_dispatching_an_alert_twice_delivers_it_once(engine):
    with Receiver() as receiver:
        subscribe(engine, "once", receiver.url)
        alert_id = insert_alert(engine, "rain-1")

        async def scenario(dispatcher, bus):
            await publish_and_wait(dispatcher, bus, alert_id)
            assert await dispatcher.dispatch(alert_id) == []  # nothing pending any more

        run(engine, scenario)
    assert len(receiver.requests) == 1 and len(log_of(engine)) == 1


def test_pending_deliveries_resume_after_a_restart(engine):
    with Receiver().fail_first(1, 500) as receiver:
        sub = subscribe(engine, "flaky", receiver.url)
        alert_id = insert_alert(engine, "rain-1")
        # First life: one failed attempt, then a long wait that the shutdown interrupts.
        slow = webhooks.Backoff(base_s=3600, cap_s=3600, max_attempts=5)

        async def first_life(dispatcher, bus):
            await bus.publish(sent(alert_id))
            while log_of(engine)[sub]["attempts"] < 1 or log_of(engine)[sub]["error"] is None:
                await asyncio.sleep(0.01)

        run(engine, first_life, backoff=slow)
        assert log_of(engine)[sub]["status"] == "pending"
        # The hour passes while the process is down.
        with engine.begin() as conn:
            conn.execute(update(deliveries).values(next_attempt_at=utcnow() - timedelta(seconds=1)))

        async def second_life(dispatcher, bus):
            await dispatcher.idle()  # start() resumed it; no new event is needed

        run(engine, second_life)

    log = log_of(engine)[sub]
    assert (log["status"], log["attempts"], len(receiver.requests)) == ("delivered", 2, 2)


def test_an_attempt_is_claimed_by_one_dispatcher_only(engine):
    sub = subscribe(engine, "shared", "http://127.0.0.1:9/hook")
    alert_id = insert_alert(engine, "rain-1")
    now, lease = utcnow(), timedelta(seconds=40)
    with engine.begin() as conn:
        [delivery_id] = alerting.plan_deliveries(conn, alert_id, [sub], now)
    with engine.begin() as conn:
        assert alerting.claim_delivery(conn, delivery_id, now, lease)["attempts"] == 1
    with engine.begin() as conn:
        assert alerting.claim_delivery(conn, delivery_id, now, lease) is None
        assert alerting.due_deliveries(conn, now) == []
    # A dispatcher that died mid-attempt leaves it due again once the lease runs out.
    with engine.begin() as conn:
        assert alerting.due_deliveries(conn, now + lease) == [delivery_id]


def test_a_subscription_paused_before_its_attempt_is_logged_not_sent(engine):
    with Receiver() as receiver:
        sub = subscribe(engine, "paused-later", receiver.url)
        alert_id = insert_alert(engine, "rain-1")
        with engine.begin() as conn:
            alerting.plan_deliveries(conn, alert_id, [sub], utcnow())
            alerting.update_subscription(conn, sub, {"active": False})
        run(engine, lambda d, b: d.idle())
    assert receiver.requests == []
    log = log_of(engine)[sub]
    assert (log["status"], log["error"]) == ("failed", "the subscription was deactivated")
