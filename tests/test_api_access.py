"""API tokens and the audit log over HTTP: admin only, tokens shown once and stored hashed."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from test_api_support import assert_problem, build_world

from haechi.store.schema import api_tokens, audit_log


@pytest.fixture
def world(engine):
    return build_world(engine)


def create(world, body, role="admin"):
    return world.client.post("/api/v1/tokens", json=body, headers=world.auth(role))


def test_created_token_is_shown_once_and_works(world):
    response = create(
        world, {"name": "상황실 김주무관", "role": "operator", "center": "situation_room"}
    )
    assert response.status_code == 201, response.text
    made = response.json()
    assert made["token"].startswith("hc_") and made["role"] == "operator"
    assert response.headers["location"] == f"/api/v1/tokens/{made['id']}"

    as_new_operator = {"Authorization": f"Bearer {made['token']}"}
    assert world.client.get("/api/v1/reports", headers=as_new_operator).status_code == 200

    again = world.client.get(response.headers["location"], headers=world.auth("admin")).json()
    assert "token" not in again and again["last_used_at"] is not None


def test_tokens_are_stored_hashed_and_never_listed(world):
    made = create(world, {"name": "citizen app", "role": "citizen"}).json()
    with world.engine.begin() as conn:
        stored = [dict(r._mapping) for r in conn.execute(select(api_tokens))]
        audited = [dict(r._mapping) for r in conn.execute(select(audit_log))]
    every_value = repr(stored) + repr(audited)
    for token in [made["token"], *world.tokens.values()]:
        assert token not in every_value
    listed = world.client.get("/api/v1/tokens", headers=world.auth("admin"))
    assert made["token"] not in listed.text
    assert all("token_hash" not in t and "token" not in t for t in listed.json())
    assert {t["name"] for t in listed.json()} >= {"citizen app", "admin-1"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "op", "role": "operator"}, "body.center"),
        ({"name": "op", "role": "operator", "center": "police"}, "body.center"),
        ({"name": "kim", "role": "citizen", "center": "119"}, "body.center"),
        ({"name": "gu", "role": "district_official"}, "body.area_code"),
        ({"name": "gu", "role": "district_official", "area_code": "11999"}, "body.area_code"),
        ({"name": "kim", "role": "citizen", "area_code": "11680"}, "body.area_code"),
        ({"name": "x", "role": "mayor"}, "body.role"),
        ({"name": "", "role": "citizen"}, "body.name"),
        ({"name": "x", "role": "citizen", "expires": "never"}, "body.expires"),
    ],
)
def test_invalid_token_request_names_the_field(world, body, field):
    assert_problem(create(world, body), 422, field)


def test_revoke_is_once_and_404_after(world):
    target = world.token_ids["device"]
    admin = world.auth("admin")
    assert world.client.delete(f"/api/v1/tokens/{target}", headers=admin).status_code == 204
    assert_problem(world.client.delete(f"/api/v1/tokens/{target}", headers=admin), 404)
    revoked = world.client.get(f"/api/v1/tokens/{target}", headers=admin).json()
    assert revoked["revoked_at"] is not None


def test_audit_lists_writes_newest_first_and_filters_by_actor(world):
    create(world, {"name": "kim", "role": "citizen"})
    create(world, {"name": "kim2", "role": "citizen"}, role="citizen")  # refused: 403
    world.client.post("/api/v1/tokens", json={"name": "x", "role": "citizen"})  # refused: 401
    audit = world.client.get("/api/v1/audit", headers=world.auth("admin")).json()
    assert [(a["actor"], a["status"]) for a in audit] == [
        ("anonymous", 401),
        ("citizen-1", 403),
        ("admin-1", 201),
    ]
    assert audit[2]["target"].startswith("/api/v1/tokens/")
    only_admin = world.client.get("/api/v1/audit?actor=admin-1", headers=world.auth("admin")).json()
    assert [a["status"] for a in only_admin] == [201]
    assert_problem(
        world.client.get("/api/v1/audit?limit=0", headers=world.auth("admin")), 422, "query.limit"
    )
