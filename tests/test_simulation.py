"""Simulations (the virtual city): API lifecycle, comparison, cancellation, bad input, and the
promise that a what-if never changes live warnings, observations or state. SQLite and PostgreSQL.
"""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from test_api_support import assert_problem
from test_quake import AREAS, PLACES

from haechi.api import create_app
from haechi.core.clock import utcnow
from haechi.core.settings import Settings
from haechi.simulation import runs
from haechi.simulation.registry import Kind, kinds
from haechi.store import access, areas, places
from haechi.store import warnings as warning_store
from haechi.store.schema import dead_letters, metadata, simulations

QUAKE = {"lon": 126.95, "lat": 37.55, "magnitude": 6.0, "depth_km": 10.0}


@pytest.fixture
def world(engine):
    with engine.begin() as conn:
        areas.save_areas(conn, AREAS)
        places.save_places(conn, PLACES)
        _, operator = access.create_token(conn, "op", "operator", center="situation_room")
        _, citizen = access.create_token(conn, "citizen", "citizen")
    client = TestClient(create_app(engine, Settings()))
    client.headers["Authorization"] = f"Bearer {operator}"
    client.citizen = {"Authorization": f"Bearer {citizen}"}
    return client


def start(client, params=None, kind="quake"):
    response = client.post("/api/v1/simulations", json={"kind": kind, "params": params or QUAKE})
    assert response.status_code == 202, response.text
    assert response.headers["Location"] == f"/api/v1/simulations/{response.json()['id']}"
    return response.json()


def finished(client, run_id, timeout_s=120):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = client.get(f"/api/v1/simulations/{run_id}").json()
        if run["status"] in runs.FINISHED:
            return run
        time.sleep(0.05)
    raise AssertionError(f"simulation {run_id} did not finish")


def test_the_registry_lists_the_quake_kind():
    assert kinds()["quake"].params.__name__ == "QuakeScenario"


def test_a_simulation_is_accepted_run_in_the_background_and_stored(world):
    queued = start(world)
    assert queued["status"] == "queued" and queued["progress"] == 0.0
    run = finished(world, queued["id"])
    assert run["status"] == "done", run
    assert run["progress"] == 1.0
    assert run["created_by"].startswith("token:")
    assert run["started_at"] <= run["finished_at"]
    result = run["result"]
    assert {a["code"] for a in result["areas"]} == {"11110101", "11110102"}
    assert result["summary"]["magnitude"] == 6.0
    listed = world.get("/api/v1/simulations", params={"kind": "quake"}).json()
    assert [r["id"] for r in listed] == [run["id"]]
    assert "result" not in listed[0]
    assert world.get("/api/v1/simulations", params={"kind": "flood"}).json() == [] or all(
        r["kind"] == "flood" for r in world.get("/api/v1/simulations", params={"kind": "flood"}).json())


def test_the_layer_is_geojson_of_the_result(world):
    run = finished(world, start(world)["id"])
    layer = world.get(f"/api/v1/simulations/{run['id']}/layer")
    assert layer.status_code == 200
    assert layer.headers["content-type"].startswith("application/geo+json")
    body = layer.json()
    assert body["type"] == "FeatureCollection"
    assert {f["properties"]["code"] for f in body["features"]} == {"11110101", "11110102"}
    assert all(f["geometry"]["type"] == "Polygon" for f in body["features"])


def test_two_scenarios_compare_side_by_side(world):
    small = finished(world, start(world, QUAKE | {"magnitude": 5.5})["id"])
    large = finished(world, start(world, QUAKE | {"magnitude": 6.5})["id"])
    compared = world.get("/api/v1/simulations/compare", params={"ids": f"{small['id']},{large['id']}"})
    assert compared.status_code == 200, compared.text
    body = compared.json()
    assert body["ids"] == [small["id"], large["id"]]
    assert [s["magnitude"] for s in body["summaries"]] == [5.5, 6.5]
    assert body["summary_differences_from_first"]["max_pga_g"][1] > 0
    by_code = {a["code"]: a for a in body["areas"]}
    pga = by_code["11110101"]["values"]["pga_g"]
    assert by_code["11110101"]["differences_from_first"]["pga_g"] == [0.0, pytest.approx(pga[1] - pga[0])]


def test_compare_refuses_one_id_and_unfinished_runs(world):
    assert_problem(world.get("/api/v1/simulations/compare", params={"ids": "1"}), 422, "query.ids")
    done = finished(world, start(world)["id"])
    with world.app.state.engine.begin() as conn:
        pending = runs.create(conn, "quake", kinds()["quake"].params.model_validate(QUAKE), "test")
    assert_problem(world.get("/api/v1/simulations/compare", params={"ids": f"{done['id']},{pending['id']}"}), 409)


def test_bad_scenarios_are_refused_by_field_and_kept(world, engine):
    assert_problem(world.post("/api/v1/simulations", json={"kind": "quake", "params": QUAKE | {"magnitude": 9.5}}),
                   422, "params.magnitude")
    assert_problem(world.post("/api/v1/simulations", json={"kind": "quake", "params": QUAKE | {"lon": 129.4,
                                                                                                 "lat": 36.0}}),
                   422, "lon")
    assert_problem(world.post("/api/v1/simulations", json={"kind": "tsunami", "params": {}}), 422, "kind")
    assert_problem(world.post("/api/v1/simulations", json={"kind": "quake", "params": {"lon": 127.0}}),
                   422, "params.lat")
    with engine.connect() as conn:
        reasons = conn.execute(select(dead_letters.c.reason).where(dead_letters.c.source == "simulations")
                               .order_by(dead_letters.c.id)).scalars().all()
        assert len(reasons) == 4
        assert "magnitude" in reasons[0] and "tsunami" in reasons[2]
        assert conn.execute(select(simulations.c.id)).first() is None  # nothing refused was queued


def test_citizens_cannot_run_simulations(world):
    response = world.post("/api/v1/simulations", json={"kind": "quake", "params": QUAKE}, headers=world.citizen)
    assert_problem(response, 403)


def test_cancel_stops_a_run_at_its_next_progress_step(engine, world):
    with engine.begin() as conn:
        run = runs.create(conn, "quake", kinds()["quake"].params.model_validate(QUAKE), "test")
    seen = []

    def cancel_at_first_step(done, total, what):
        seen.append(what)
        if len(seen) == 1:
            response = world.post(f"/api/v1/simulations/{run['id']}/cancel")
            assert response.status_code == 200 and response.json()["cancel_requested"]

    final = runs.execute(engine, run["id"], cancel_at_first_step)
    assert final["status"] == "cancelled"
    assert final["result"] is None
    assert seen == ["areas"]  # stopped at the first step, the model went no further
    assert_problem(world.post(f"/api/v1/simulations/{run['id']}/cancel"), 409)


def test_a_queued_run_is_cancelled_at_once(engine, world):
    with engine.begin() as conn:
        run = runs.create(conn, "quake", kinds()["quake"].params.model_validate(QUAKE), "test")
    assert world.post(f"/api/v1/simulations/{run['id']}/cancel").json()["status"] == "cancelled"
    assert runs.execute(engine, run["id"])["status"] == "cancelled"


def test_a_failing_model_marks_the_run_failed_with_its_reason(engine, monkeypatch):
    def explode(engine, params, progress):
        raise RuntimeError("model blew up")

    real = kinds()["quake"]
    monkeypatch.setattr(runs, "kinds", lambda: {"quake": Kind("quake", real.params, explode)})
    with engine.begin() as conn:
        run = runs.create(conn, "quake", real.params.model_validate(QUAKE), "test")
    final = runs.execute(engine, run["id"])
    assert final["status"] == "failed"
    assert "model blew up" in final["error"]


def _snapshot(engine) -> dict[str, list]:
    """Every table's rows but the run's own record and request bookkeeping (audit, token last use)."""
    with engine.connect() as conn:
        return {t.name: sorted(map(repr, conn.execute(select(t)).all())) for t in metadata.sorted_tables
                if t.name not in ("simulations", "dead_letters", "audit_log", "api_tokens")}


def test_simulations_never_change_live_warnings_or_state(engine, world):
    now = utcnow()
    with engine.begin() as conn:
        warning_id = warning_store.open_warning(conn, {
            "hazard": "earthquake", "area_key": "district:11110", "area_code": "11110", "level": "warning",
            "crisis_level": "alert", "issued_at": now, "updated_at": now})
    published = []
    with world:  # the lifespan starts the live warning service on the app's bus
        world.app.state.bus.subscribe("*", lambda event: published.append(event))
        before = _snapshot(engine)
        run = finished(world, start(world, QUAKE | {"magnitude": 7.0, "lon": 126.96})["id"])
        assert run["status"] == "done"
        assert run["result"]["summary"]["max_mmi"] >= 8  # shaking strong enough to warn, if it were real
        after = _snapshot(engine)
    assert after == before
    assert published == []
    with engine.connect() as conn:
        assert warning_store.get_warning(conn, warning_id)["status"] == "active"


def test_the_cli_runs_a_quake_scenario_and_stores_it(world, db_url, engine):
    from typer.testing import CliRunner

    from haechi.cli import app as cli

    out = CliRunner().invoke(cli, ["simulate", "quake", "--lon", "126.95", "--lat", "37.55", "--magnitude", "6.2",
                                   "--depth", "9", "--database-url", db_url])
    assert out.exit_code == 0, out.output
    assert "done" in out.output and "Inspection list" in out.output
    refused = CliRunner().invoke(cli, ["simulate", "quake", "--lon", "126.95", "--lat", "37.55", "--magnitude", "8.9",
                                       "--database-url", db_url])
    assert refused.exit_code == 2
    assert "params.magnitude" in refused.output
    with engine.connect() as conn:
        stored = runs.find(conn, "quake")
    assert [(r["status"], r["created_by"], r["params"]["magnitude"]) for r in stored] == [("done", "cli", 6.2)]
