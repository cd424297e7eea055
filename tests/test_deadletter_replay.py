"""An operator lists dead letters, fixes one and replays it; nothing is doubled or lost."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from haechi.cities.load import load_city
from haechi.cli import app
from haechi.ingest.pipeline import Pipeline
from haechi.model.reading import Reading, Rejected
from haechi.store import deadletters, open_db, sensing

runner = CliRunner()
WHEN = "2024-07-01T09:00:00+09:00"


@pytest.fixture
def db(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'dl.db'}"
    monkeypatch.setenv("HAECHI_DATABASE_URL", url)
    monkeypatch.setenv("COLUMNS", "300")  # one table row per letter, unwrapped
    engine = open_db(url)
    load_city(engine, "seoul")
    with engine.connect() as conn:
        stream = next(p["id"] for p in sensing.stream_profiles(conn) if p["property"] == "water_level")
    return engine, stream


def test_list_fix_and_replay(db):
    engine, stream = db
    Pipeline(engine).store([
        Rejected(0, "result must be a number (got 'high')", "result",
                 json.dumps({"datastream_id": stream, "phenomenon_time": WHEN, "result": "high"})),
        Reading(stream + 1_000_000, datetime(2024, 7, 1, tzinfo=UTC), 3.0),  # unknown: the pack has ~4,600
    ], "http:gateway")
    listing = runner.invoke(app, ["deadletter", "list"])
    assert (listing.exit_code == 0 and "result must be a number" in listing.output
            and "unknown datastream" in listing.output)

    with engine.connect() as conn:
        bad_value, unknown = (d["id"] for d in deadletters.pending(conn))
    still = runner.invoke(app, ["deadletter", "replay", str(bad_value)])  # unchanged, still wrong
    assert still.exit_code == 1 and "still pending" in still.output
    fixed = json.dumps({"datastream_id": stream, "phenomenon_time": WHEN, "result": 2.5})
    done = runner.invoke(app, ["deadletter", "replay", str(bad_value), "--payload", fixed])
    assert done.exit_code == 0 and "replayed" in done.output
    again = runner.invoke(app, ["deadletter", "replay", str(bad_value), "--payload", fixed])
    assert "already there" in again.output  # a second replay stores nothing twice

    with engine.connect() as conn:
        assert [o["result"] for o in sensing.observations_of(conn, stream)] == [2.5]
        assert [d["id"] for d in deadletters.pending(conn)] == [unknown]  # no new letters were made


def test_mqtt_letters_take_their_datastream_from_the_topic(db):
    engine, stream = db
    with engine.begin() as conn:
        deadletters.keep(conn, f"mqtt:haechi/v1/{stream}/observations", "database was down",
                         json.dumps([{"phenomenon_time": WHEN, "result": 3.1}]))
    assert runner.invoke(app, ["deadletter", "replay"]).exit_code == 0
    with engine.connect() as conn:
        assert sensing.observations_of(conn, stream)[0]["result"] == 3.1


def test_payload_needs_exactly_one_letter(db):
    result = runner.invoke(app, ["deadletter", "replay", "--payload", "{}"])
    assert result.exit_code == 2 and "exactly one id" in result.output


def test_replay_leaves_the_records_of_warnings_no_district_holds(db):
    engine, stream = db
    with engine.begin() as conn:
        deadletters.keep(conn, f"mqtt:haechi/v1/{stream}/observations", "database was down",
                         json.dumps([{"phenomenon_time": WHEN, "result": 3.4}]))
        record = deadletters.keep(conn, "warning:stream:77", "cannot place warning area stream:77: the sensor has "
                                  "no location", json.dumps({"warning_id": 1, "kind": "issue", "hazard": "fine_dust"}))
    result = runner.invoke(app, ["deadletter", "replay"])
    assert result.exit_code == 0, result.output  # every letter of readings went in
    assert f"{record}: left" in result.output and "still pending" not in result.output
    with engine.connect() as conn:
        assert [d["id"] for d in deadletters.pending(conn)] == [record]  # kept for an operator to act on
        assert sensing.observations_of(conn, stream)[0]["result"] == 3.4
