"""``haechi incident`` and ``haechi unit`` from a terminal, on the integrated DB."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from haechi.cli import app
from haechi.response import commands, repository
from haechi.store import open_db, places
from haechi.store.incidents import events_of, get_incident

runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch):
    monkeypatch.setattr(commands.console, "width", 160)  # tables unwrapped, as on an operator's screen


def run(db_url, *args):
    return runner.invoke(app, [*args, "--database-url", db_url])


def test_incident_commands_open_move_hand_off_and_show(db_url):
    opened = run(db_url, "incident", "open", "--kind", "fire", "--lon", "127.03", "--lat", "37.50",
                 "--title", "역삼 화재")
    assert opened.exit_code == 0, opened.output
    assert "owned by 119" in opened.output  # the kind's usual center
    illegal = run(db_url, "incident", "move", "1", "contained")
    assert illegal.exit_code == 2  # the same status as every haechi command refusing input
    assert "allowed next statuses: verified, responding, closed" in illegal.output.replace("\n", " ")
    assert run(db_url, "incident", "move", "1", "verified", "--note", "CCTV 확인").exit_code == 0
    assert run(db_url, "incident", "handoff", "1", "situation_room").exit_code == 0
    listed = run(db_url, "incident", "list", "--center", "situation_room")
    assert "역삼 화재" in listed.output and "verified" in listed.output
    assert "역삼 화재" not in run(db_url, "incident", "list", "--center", "119").output
    shown = run(db_url, "incident", "show", "1")
    assert shown.exit_code == 0
    for word in ("opened", "status", "handoff", "CCTV 확인"):
        assert word in shown.output
    engine = open_db(db_url)
    with engine.begin() as conn:
        incident = get_incident(conn, 1)
        assert (incident["status"], incident["center"]) == ("verified", "situation_room")
        assert all(e["actor"].startswith("cli:") for e in events_of(conn, 1))
    engine.dispose()


def test_unit_commands_add_list_and_refuse_illegal_moves(db_url):
    engine = open_db(db_url)
    with engine.begin() as conn:
        places.save_places(conn, [{"kind": "fire_station", "ref": "F", "name_ko": "강남소방서",
                                   "lon": 127.05, "lat": 37.5}])
        station = places.list_places(conn, "fire_station")[0]["id"]
    engine.dispose()
    assert run(db_url, "unit", "add", "강남-펌프1", "--unit-type", "pumper", "--station", str(station)).exit_code == 0
    listed = run(db_url, "unit", "list")
    assert "강남-펌프1" in listed.output and "available" in listed.output and "127.05000" in listed.output
    refused = run(db_url, "unit", "move", "1", "on_scene")
    assert refused.exit_code == 2 and "allowed next statuses" in refused.output.replace("\n", " ")
    assert run(db_url, "unit", "move", "1", "out_of_service").exit_code == 0
    assert "out_of_service" in run(db_url, "unit", "list").output


def test_closing_an_incident_from_the_terminal_sends_its_unit_back(db_url):
    from haechi.response import dispatch, incidents, travel

    engine = open_db(db_url)
    with engine.begin() as conn:
        places.save_places(conn, [{"kind": "fire_station", "ref": "F", "name_ko": "강남소방서",
                                   "lon": 127.05, "lat": 37.5}])
        station = places.list_places(conn, "fire_station")[0]["id"]
        unit = dispatch.add_unit(conn, call_sign="강남-펌프1", unit_type="pumper", station_place_id=station)
        fire = incidents.open_incident(conn, kind="fire", lon=127.03, lat=37.5, title="역삼 화재", actor="t")
        dispatch.dispatch(conn, fire["id"], [unit["id"]], travel.estimate, actor="t")
    closed = run(db_url, "incident", "move", str(fire["id"]), "closed")
    assert closed.exit_code == 0, closed.output
    assert "released (복귀): 강남-펌프1" in closed.output
    with engine.begin() as conn:
        assert repository.get_unit(conn, unit["id"])["status"] == "available"
    engine.dispose()
