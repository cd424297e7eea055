"""``haechi connect list | run | status`` as an operator uses them, against recorded API answers."""

from __future__ import annotations

import pytest
from test_connectors import KEY, Recorded, readings
from typer.testing import CliRunner

from haechi.cli import app
from haechi.imports.connectors import commands
from haechi.store import open_db

runner = CliRunner()
KEYS = ("HAECHI_AIRKOREA_KEY", "HAECHI_DATA_GO_KR_KEY", "HAECHI_KMA_KEY", "HAECHI_KMA_APIHUB_KEY",
        "HAECHI_HRFCO_KEY", "HAECHI_SEOUL_OPENAPI_KEY")


@pytest.fixture
def cli_env(db_url, monkeypatch):
    for variable in KEYS:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HAECHI_DATABASE_URL", db_url)
    monkeypatch.setenv("COLUMNS", "300")  # table rows unwrapped
    return db_url


def serve(monkeypatch, routes) -> Recorded:
    recorded = Recorded(routes)
    monkeypatch.setattr(commands, "TRANSPORT", recorded.transport())
    return recorded


def test_list_and_status_say_which_key_is_missing(cli_env, monkeypatch):
    monkeypatch.setenv("HAECHI_HRFCO_KEY", KEY)
    listing = runner.invoke(app, ["connect", "list"])
    assert listing.exit_code == 0
    assert "disabled: HAECHI_AIRKOREA_KEY or HAECHI_DATA_GO_KR_KEY is not set" in listing.output
    assert "disabled: HAECHI_SEOUL_OPENAPI_KEY is not set" in listing.output
    assert listing.output.count("set · 설정됨") == 1 and KEY not in listing.output
    status = runner.invoke(app, ["connect", "status"])
    assert status.exit_code == 0 and "never run" in status.output
    assert "disabled: HAECHI_KMA_KEY or HAECHI_DATA_GO_KR_KEY is not set" in status.output


def test_run_stores_then_status_shows_it_and_a_rerun_stores_nothing(cli_env, monkeypatch):
    monkeypatch.setenv("HAECHI_HRFCO_KEY", KEY)
    serve(monkeypatch, [("/1018683/", {}, ["hrfco/waterlevel_1018683.json"]), ("waterlevel", {}, ["hrfco/empty.json"])])
    first = runner.invoke(app, ["connect", "run", "hrfco"])
    assert first.exit_code == 0, first.output
    assert "hrfco" in first.output and " 25 " in first.output  # 13 levels + 12 discharges stored
    engine = open_db(cli_env)
    try:
        assert len(readings(engine, "river_gauge", "1018683", "water_level")) == 13
    finally:
        engine.dispose()
    again = runner.invoke(app, ["connect", "run"])  # every connector with a key: only hrfco here
    assert again.exit_code == 0 and "airkorea" not in again.output
    status = runner.invoke(app, ["connect", "status"])
    assert status.exit_code == 0
    hrfco = next(line for line in status.output.splitlines() if "hrfco" in line)
    assert "ok" in hrfco and " 0 " in hrfco  # the re-run stored nothing new


def test_a_refused_key_exits_non_zero_with_the_reason(cli_env, monkeypatch):
    monkeypatch.setenv("HAECHI_AIRKOREA_KEY", KEY)
    serve(monkeypatch, [("getCtprvnRltmMesureDnsty", {}, ["airkorea/key_not_registered.xml"])])
    result = runner.invoke(app, ["connect", "run", "airkorea"])
    assert result.exit_code == 1
    assert "key_refused" in result.output and "SERVICE_KEY_IS_NOT_REGISTERED_ERROR" in result.output
    status = runner.invoke(app, ["connect", "status"])
    assert "key_refused" in status.output and KEY not in status.output


def test_an_unknown_connector_and_no_keys_are_clear(cli_env):
    unknown = runner.invoke(app, ["connect", "run", "nowhere"])
    assert unknown.exit_code == 2 and "unknown connector 'nowhere'" in unknown.output
    none = runner.invoke(app, ["connect", "run"])
    assert none.exit_code == 1 and "no connector has a service key set" in none.output
