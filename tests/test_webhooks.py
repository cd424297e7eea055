"""The pure parts of webhooks: signatures, matching, tailored bodies, and the retry schedule."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest
from test_channels_support import alert_row

from haechi.alerts import webhooks
from haechi.alerts.webhooks import Backoff, Outcome, after_attempt, areas_overlap, classify

# ── signing ─────────────────────────────────────────────────────────────────────────────


def test_signature_is_the_hex_hmac_sha256_of_the_raw_body():
    body = '{"alert":"호우경보"}'.encode()
    expected = hmac.new(b"s3cret-key-0123456", body, hashlib.sha256).hexdigest()
    assert webhooks.sign("s3cret-key-0123456", body) == f"sha256={expected}"
    assert webhooks.verify("s3cret-key-0123456", body, f"sha256={expected}")
    assert not webhooks.verify("s3cret-key-0123456", body + b" ", f"sha256={expected}")
    assert not webhooks.verify("another-key-0123456", body, f"sha256={expected}")


def test_headers_name_delivery_event_time_and_signature():
    now = datetime(2024, 7, 10, 5, 0, tzinfo=UTC)
    headers = webhooks.signed_headers(
        "k" * 20, b"{}", delivery_id=42, event="alert.sent", media_type="application/json", now=now
    )
    assert headers["X-Haechi-Delivery"] == "42"
    assert headers["X-Haechi-Event"] == "alert.sent"
    assert headers["X-Haechi-Timestamp"] == str(int(now.timestamp()))
    assert headers["X-Haechi-Signature"] == webhooks.sign("k" * 20, b"{}")
    assert headers["Content-Type"] == "application/json"


# ── matching ────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("alert_codes", "prefixes", "meet"),
    [
        (["1168010100"], ["11680"], True),  # a dong inside the subscribed district
        (["11680"], ["11"], True),  # city-wide subscription gets every district
        (["11"], ["11680"], True),  # a Seoul-wide alert covers Gangnam too
        (["11110"], ["11680"], False),  # Jongno is not Gangnam
        (["11110", "11680"], ["11680"], True),  # any one code is enough
        (["11680"], ["11110", "11650"], False),
        (["11680"], [], True),  # no areas: everywhere
        ([], ["11680"], False),  # an alert without areas reaches only everywhere-subscribers
        (["1168010100"], ["1168010700"], False),  # neighbouring dongs
    ],
)
def test_areas_meet_by_code_prefix_either_way(alert_codes, prefixes, meet):
    assert areas_overlap(alert_codes, prefixes) is meet


def subscription(**kw):
    return {"active": True, "include_exercises": False, "area_codes": [], "languages": [],
            "audiences": [], **kw}


@pytest.mark.parametrize(
    ("status", "include_exercises", "delivered"),
    [
        ("Actual", False, True),
        ("Actual", True, True),
        ("Exercise", False, False),  # drills never reach actual-only subscribers
        ("Exercise", True, True),
        ("Test", True, False),
        ("System", True, False),
        ("Draft", True, False),
    ],
)
def test_drills_reach_only_subscribers_who_opted_in(status, include_exercises, delivered):
    alert = alert_row("a-1", status=status)
    assert webhooks.wants(subscription(include_exercises=include_exercises), alert) is delivered


def test_inactive_subscriptions_and_other_areas_get_nothing():
    alert = alert_row("a-1", codes=["1168010100"])
    assert not webhooks.wants(subscription(active=False), alert)
    assert not webhooks.wants(subscription(area_codes=["11110"]), alert)
    assert webhooks.wants(subscription(area_codes=["11110", "11680"]), alert)


def test_an_alert_for_operators_only_reaches_no_subscriber():
    """A warning no district holds is announced Restricted (compose): it goes to no channel, even
    one subscribed everywhere, since it reaches no place."""
    alert = alert_row("a-1", codes=[])
    assert webhooks.wants(subscription(), alert)
    restricted = {**alert, "cap_json": {**alert["cap_json"], "scope": "Restricted"}}
    assert not webhooks.wants(subscription(), restricted)
    assert not webhooks.wants(subscription(include_exercises=True), restricted)


# ── bodies ──────────────────────────────────────────────────────────────────────────────


def test_json_body_keeps_the_subscribers_languages_and_audiences():
    alert = {**alert_row("a-1", languages=["ko-KR", "en-US", "zh-CN"]), "id": 7}
    sub = subscription(languages=["en", "zh"], audiences=["elderly", "foreigners"])
    body = webhooks.json_body(alert, sub, delivery_id=3, event="alert.sent",
                              public_url="https://haechi.example/")
    document = json.loads(body)
    assert document["event"] == "alert.sent" and document["delivery_id"] == 3
    sent = document["alert"]
    assert sent["id"] == 7 and sent["identifier"] == "a-1" and sent["exercise"] is False
    assert sent["sent"] == "2024-07-10T05:00:00Z"
    assert sent["links"] == {"cap_xml": "https://haechi.example/api/v1/alerts/7.xml",
                             "json": "https://haechi.example/api/v1/alerts/7"}
    assert [i["language"] for i in sent["cap"]["info"]] == ["en-US", "zh-CN"]
    assert set(sent["cap"]["guidance"]) == {"elderly", "foreigners"}


def test_a_subscriber_whose_languages_the_alert_lacks_gets_the_original():
    cap = alert_row("a-1")["cap_json"]
    tailored = webhooks.tailored_cap(cap, ["fr"], [])
    assert [i["language"] for i in tailored["info"]] == ["ko-KR"]
    assert tailored["guidance"] == cap["guidance"]  # no audiences: all of them


def test_guidance_inside_info_and_wrapped_alerts_are_tailored_too():
    info = {"language": "ko-KR", "guidance": {"general": "a", "children": "b"}}
    tailored = webhooks.tailored_cap({"alert": {"info": [info]}}, [], ["children"])
    assert tailored == {"alert": {"info": [{"language": "ko-KR", "guidance": {"children": "b"}}]}}


def test_xml_subscribers_get_the_cap_message_itself():
    alert = {**alert_row("a-1"), "id": 7}
    body, media = webhooks.delivery_body(
        alert, subscription(format="xml"), delivery_id=1, event="alert.sent", public_url="http://h"
    )
    assert media == "application/cap+xml"
    assert body == alert["cap_xml"].encode()
    _, media = webhooks.delivery_body(
        alert, subscription(), delivery_id=1, event="alert.sent", public_url="http://h"
    )
    assert media == "application/json"


# ── retries ─────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.DELIVERED), (202, Outcome.DELIVERED), (204, Outcome.DELIVERED),
        (None, Outcome.RETRY), (500, Outcome.RETRY), (502, Outcome.RETRY),
        (503, Outcome.RETRY), (429, Outcome.RETRY),
        (400, Outcome.REJECTED), (401, Outcome.REJECTED), (404, Outcome.REJECTED),
        (410, Outcome.REJECTED), (301, Outcome.REJECTED),
    ],
)
def test_network_errors_5xx_and_429_are_retried_other_refusals_are_final(status, outcome):
    assert classify(status) is outcome


def test_backoff_doubles_up_to_its_cap_and_honours_retry_after():
    backoff = Backoff(base_s=1, factor=2, cap_s=10, max_attempts=8)
    assert [backoff.delay(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
    assert backoff.delay(1, retry_after_s=5) == 5
    assert backoff.delay(3, retry_after_s=1) == 4  # never sooner than the schedule
    assert backoff.delay(1, retry_after_s=3600) == 10  # never past the cap


def test_attempts_stop_at_the_limit_or_at_a_final_answer():
    backoff = Backoff(base_s=1, factor=2, cap_s=60, max_attempts=3)
    assert after_attempt(Outcome.RETRY, 1, backoff) == webhooks.Step("pending", 1)
    assert after_attempt(Outcome.RETRY, 2, backoff) == webhooks.Step("pending", 2)
    assert after_attempt(Outcome.RETRY, 3, backoff) == webhooks.Step("failed")
    assert after_attempt(Outcome.REJECTED, 1, backoff) == webhooks.Step("failed")
    assert after_attempt(Outcome.DELIVERED, 3, backoff) == webhooks.Step("delivered")


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("120", 120.0), ("0", 0.0), (None, None), ("-5", None),
     ("Wed, 21 Oct 2015 07:28:00 GMT", None), ("soon", None)],
)
def test_retry_after_is_read_in_seconds(header, seconds):
    assert webhooks.retry_after_seconds(header) == seconds
