"""Webhooks through the running app: the dispatcher starts with it, resumes, retries on request."""

from __future__ import annotations

import time

import pytest
from test_api_support import build_world
from test_channels_support import LOCAL_WEBHOOK_SETTINGS, Receiver, insert_alert

from haechi.core.clock import utcnow
from haechi.core.events import Event
from haechi.store import alerting

PATH = "/api/v1/subscriptions"


@pytest.fixture
def world(engine):
    return build_world(engine, **LOCAL_WEBHOOK_SETTINGS)


def subscribe(world, url, **kw) -> dict:
    body = {"name": "gateway", "url": url, **kw}
    response = world.client.post(PATH, json=body, headers=world.auth("operator"))
    assert response.status_code == 201, response.text
    return response.json()


def wait_for_log(world, subscription_id, status, deadline_s=30.0) -> dict:
    """The first delivery of the subscription once it reaches ``status`` (polled, not timed)."""
    url = f"{PATH}/{subscription_id}/deliveries"
    give_up = time.monotonic() + deadline_s
    while time.monotonic() < give_up:
        log = world.client.get(url, headers=world.auth("operator")).json()
        if log and log[0]["status"] == status:
            return log[0]
        time.sleep(0.02)
    raise AssertionError(f"delivery never became {status}: {log}")


def test_an_alert_published_on_the_apps_bus_reaches_the_webhook(world):
    with Receiver() as receiver, world.client as client:
        sub = subscribe(world, receiver.url, area_codes=["11680"])
        alert_id = insert_alert(world.engine, "rain-1", codes=["1168010100"])
        client.portal.call(client.app.state.bus.publish, Event("alert.sent", {"id": alert_id}))
        delivered = wait_for_log(world, sub["id"], "delivered")
    assert (delivered["alert_id"], delivered["attempts"]) == (alert_id, 1)
    [request] = receiver.requests
    assert request.json()["alert"]["links"]["cap_xml"].endswith(f"/api/v1/alerts/{alert_id}.xml")


def test_deliveries_left_pending_are_resumed_when_the_app_starts(world):
    with Receiver() as receiver:
        sub = subscribe(world, receiver.url)
        alert_id = insert_alert(world.engine, "rain-1")
        with world.engine.begin() as conn:  # planned by a process that then died
            alerting.plan_deliveries(conn, alert_id, [sub["id"]], utcnow())
        with world.client:
            wait_for_log(world, sub["id"], "delivered")
    assert len(receiver.requests) == 1


def test_a_failed_delivery_can_be_retried_by_an_operator(world):
    with Receiver(default=400) as receiver, world.client as client:
        sub = subscribe(world, receiver.url)
        alert_id = insert_alert(world.engine, "rain-1")
        client.portal.call(client.app.state.bus.publish, Event("alert.sent", {"id": alert_id}))
        failed = wait_for_log(world, sub["id"], "failed")
        assert failed["response_status"] == 400
        receiver.default = 200  # the receiver is fixed
        retry = f"{PATH}/{sub['id']}/deliveries/{failed['id']}/retry"
        response = client.post(retry, headers=world.auth("operator"))
        assert response.status_code == 202, response.text
        delivered = wait_for_log(world, sub["id"], "delivered")
    assert delivered["id"] == failed["id"] and delivered["attempts"] == 1
    assert len(receiver.requests) == 2
