"""Webhook subscriptions over HTTP: CRUD by admins and operators, validation, the delivery log."""

from __future__ import annotations

import pytest
from sqlalchemy import insert
from test_api_support import assert_problem, build_world
from test_channels_support import insert_alert

from haechi.core.clock import utcnow
from haechi.store import alerting
from haechi.store.schema import deliveries

PATH = "/api/v1/subscriptions"
HOOK = {
    "name": "강남구 재난문자 게이트웨이",
    "url": "https://sms-gateway.example/hooks/haechi",
    "area_codes": ["11680"],
    "languages": ["ko", "en"],
    "audiences": ["elderly"],
}


@pytest.fixture
def world(engine):
    return build_world(engine)


def create(world, body=HOOK, role="operator"):
    return world.client.post(PATH, json=body, headers=world.auth(role))


# ── CRUD ────────────────────────────────────────────────────────────────────────────────


def test_created_subscription_shows_its_secret_once(world):
    response = create(world)
    assert response.status_code == 201, response.text
    made = response.json()
    assert response.headers["location"] == f"{PATH}/{made['id']}"
    assert len(made["secret"]) >= 32
    assert made["include_exercises"] is False and made["active"] is True
    assert made["format"] == "json"
    assert made["created_at"].endswith("Z")
    shown = world.client.get(response.headers["location"], headers=world.auth("operator")).json()
    assert "secret" not in shown
    assert shown == {k: v for k, v in made.items() if k != "secret"}
    listed = world.client.get(PATH, headers=world.auth("admin")).json()
    assert listed == [shown]


def test_a_given_secret_is_kept(world):
    made = create(world, {**HOOK, "secret": "my-own-secret-of-32-characters!!"}).json()
    assert made["secret"] == "my-own-secret-of-32-characters!!"
    with world.engine.begin() as conn:
        stored = alerting.get_subscription(conn, made["id"], with_secret=True)
    assert stored["secret"] == made["secret"]


def test_defaults_mean_everywhere_every_language_every_audience(world):
    made = create(world, {"name": "all", "url": "https://gateway.example:9000/"}).json()
    assert (made["area_codes"], made["languages"], made["audiences"]) == ([], [], [])


def test_patch_changes_only_the_fields_given(world):
    made = create(world).json()
    url = f"{PATH}/{made['id']}"
    response = world.client.patch(
        url, json={"include_exercises": True, "area_codes": ["11"]}, headers=world.auth("operator")
    )
    assert response.status_code == 200, response.text
    changed = response.json()
    assert changed["include_exercises"] is True and changed["area_codes"] == ["11"]
    assert changed["languages"] == ["ko", "en"] and changed["name"] == HOOK["name"]


def test_rotating_the_secret_shows_the_new_one_once(world):
    made = create(world).json()
    rotated = world.client.post(f"{PATH}/{made['id']}/secret", headers=world.auth("operator"))
    assert rotated.status_code == 200
    assert rotated.json()["secret"] != made["secret"]


def test_deleted_subscription_is_gone(world):
    made = create(world).json()
    url = f"{PATH}/{made['id']}"
    assert world.client.delete(url, headers=world.auth("admin")).status_code == 204
    assert_problem(world.client.get(url, headers=world.auth("admin")), 404)
    assert_problem(world.client.delete(url, headers=world.auth("admin")), 404)


# ── who may ─────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", PATH), ("post", PATH), ("get", f"{PATH}/1"), ("patch", f"{PATH}/1"),
     ("delete", f"{PATH}/1"), ("get", f"{PATH}/1/deliveries"), ("post", f"{PATH}/1/secret")],
)
def test_subscriptions_need_a_token(world, method, path):
    kwargs = {"json": {}} if method in ("post", "patch") else {}
    response = getattr(world.client, method)(path, **kwargs)
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("role", ["district_official", "guardian", "citizen", "device"])
def test_only_admins_and_operators_manage_subscriptions(world, role):
    assert_problem(create(world, role=role), 403)
    assert_problem(world.client.get(PATH, headers=world.auth(role)), 403)


def test_admins_manage_subscriptions_too(world):
    assert create(world, role="admin").status_code == 201


# ── validation ──────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"url": "ftp://files.example/hook"}, "body.url"),
        ({"url": "javascript:alert(1)"}, "body.url"),
        ({"url": "/relative/hook"}, "body.url"),
        ({"url": "https:///no-host"}, "body.url"),
        ({"url": "http://host.example:99999/"}, "body.url"),
        ({"area_codes": ["gangnam"]}, "body.area_codes.0"),
        ({"area_codes": ["11680", "11999"]}, "body.area_codes.1"),  # no such area loaded
        ({"area_codes": ["11680", "11680"]}, "body.area_codes"),
        ({"languages": ["english!"]}, "body.languages.0"),
        ({"audiences": ["Elderly People"]}, "body.audiences.0"),
        ({"secret": "short"}, "body.secret"),
        ({"include_exercises": "sometimes"}, "body.include_exercises"),
        ({"format": "yaml"}, "body.format"),
        ({"name": ""}, "body.name"),
        ({"colour": "red"}, "body.colour"),
    ],
)
def test_invalid_subscriptions_name_the_field(world, change, field):
    assert_problem(create(world, {**HOOK, **change}), 422, field)
    assert world.client.get(PATH, headers=world.auth("admin")).json() == []


@pytest.mark.parametrize(("url", "reason"), [
    ("http://127.0.0.1:5432/", "must use https"),
    ("https://127.0.0.1:5432/", "loopback"),
    ("http://169.254.169.254/latest/meta-data/", "must use https"),
    ("https://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://[::1]/", "must use https"),
    ("https://[::1]/", "loopback"),
    ("https://10.0.0.5/hook", "private"),
    ("https://localhost/hook", "localhost resolves to 127.0.0.1"),
])
def test_webhooks_into_this_host_or_its_network_are_refused_by_default(world, url, reason):
    problem = assert_problem(create(world, {**HOOK, "url": url}), 422, "body.url")
    assert reason in problem["detail"]
    assert world.client.get(PATH, headers=world.auth("admin")).json() == []


def test_a_subscription_cannot_be_moved_into_this_hosts_network(world):
    made = create(world).json()
    url = f"{PATH}/{made['id']}"
    response = world.client.patch(url, json={"url": "https://192.168.0.1/"}, headers=world.auth("operator"))
    assert "private" in assert_problem(response, 422, "body.url")["detail"]
    assert world.client.get(url, headers=world.auth("admin")).json()["url"] == HOOK["url"]


def test_local_receivers_are_allowed_only_by_explicit_settings(engine):
    local = build_world(engine, webhook_allow_http=True, webhook_allowed_networks=["127.0.0.1/32"])
    assert create(local, {**HOOK, "url": "http://127.0.0.1:9000/hook"}).status_code == 201
    assert_problem(create(local, {**HOOK, "url": "http://[::1]:9000/hook"}), 422, "body.url")


def test_missing_url_is_named(world):
    assert_problem(create(world, {"name": "no url"}), 422, "body.url")


@pytest.mark.parametrize(
    ("change", "field"),
    [({"url": "ftp://x.example/"}, "body.url"), ({"active": None}, "body.active"),
     ({"area_codes": ["11999"]}, "body.area_codes.0"), ({"secret": "x" * 20}, "body.secret")],
)
def test_invalid_changes_name_the_field(world, change, field):
    made = create(world).json()
    url = f"{PATH}/{made['id']}"
    response = world.client.patch(url, json=change, headers=world.auth("operator"))
    assert_problem(response, 422, field)


# ── the delivery log ────────────────────────────────────────────────────────────────────


def log_row(alert_id, subscription_id, status, **kw):
    row = {"alert_id": alert_id, "subscription_id": subscription_id, "status": status,
           "attempts": 1, "response_status": None, "error": None, "delivered_at": None,
           "created_at": utcnow()}
    return {**row, **kw}


def test_delivery_log_lists_attempts_newest_first(world):
    made = create(world).json()
    first, second = insert_alert(world.engine, "a-1"), insert_alert(world.engine, "a-2")
    with world.engine.begin() as conn:
        conn.execute(insert(deliveries), [
            log_row(first, made["id"], "delivered", response_status=200, delivered_at=utcnow()),
            log_row(second, made["id"], "failed", attempts=5, response_status=503,
                    error="HTTP 503"),
        ])
    url = f"{PATH}/{made['id']}/deliveries"
    log = world.client.get(url, headers=world.auth("operator")).json()
    assert [(d["alert_id"], d["status"]) for d in log] == [(second, "failed"), (first, "delivered")]
    assert log[0]["attempts"] == 5 and log[0]["error"] == "HTTP 503"
    failed = world.client.get(url, params={"status": "failed"}, headers=world.auth("operator"))
    assert [d["alert_id"] for d in failed.json()] == [second]
    assert_problem(world.client.get(f"{PATH}/999/deliveries", headers=world.auth("admin")), 404)
    assert_problem(
        world.client.get(url, params={"status": "lost"}, headers=world.auth("admin")), 422,
        "query.status",
    )


def test_only_failed_deliveries_are_retried(world):
    made = create(world).json()
    alert_id = insert_alert(world.engine, "a-1")
    with world.engine.begin() as conn:
        [done] = conn.execute(
            insert(deliveries).returning(deliveries.c.id),
            [log_row(alert_id, made["id"], "delivered")],
        ).scalars().all()
    url = f"{PATH}/{made['id']}/deliveries/{done}/retry"
    assert_problem(world.client.post(url, headers=world.auth("operator")), 409)
    other = f"{PATH}/{made['id']}/deliveries/999/retry"
    assert_problem(world.client.post(other, headers=world.auth("operator")), 404)
