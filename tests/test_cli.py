"""The `haechi` command as an operator uses it."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, select
from typer.testing import CliRunner

from haechi.cli import app
from haechi.store.schema import api_tokens, audit_log

runner = CliRunner()


@pytest.fixture
def db(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("HAECHI_DATABASE_URL", url)
    return url


def test_city_load_reports_what_it_loaded_and_audits_it(db):
    result = runner.invoke(app, ["city", "load", "seoul"])
    assert result.exit_code == 0, result.output
    assert "25 district" in result.output and "467 dong" in result.output
    info = runner.invoke(app, ["db", "info"])
    from haechi.store.db import make_engine, revision_info

    current, head = revision_info(make_engine(db))
    assert current == head and f"{head} (code: {head})" in info.output and "'district': 25" in info.output
    with create_engine(db).connect() as conn:
        assert conn.execute(select(audit_log.c.action, audit_log.c.target)).all() == [("city.load", "seoul")]


def test_unknown_pack_is_a_clear_error(db):
    result = runner.invoke(app, ["city", "load", "atlantis"])
    assert result.exit_code == 2
    assert "no city pack 'atlantis'" in result.output


def test_token_is_printed_once_and_stored_hashed(db):
    result = runner.invoke(app, ["token", "create", "gateway-1", "--role", "device"])
    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    assert token.startswith("hc_")
    with create_engine(db).connect() as conn:
        stored = conn.execute(select(api_tokens.c.token_hash)).scalar_one()
    assert token not in stored
    listing = runner.invoke(app, ["token", "list"])
    assert "gateway-1" in listing.output and token not in listing.output


def test_operator_token_needs_a_center_and_revoking_twice_fails(db):
    refused = runner.invoke(app, ["token", "create", "op", "--role", "operator"])
    assert refused.exit_code == 2 and "--center" in refused.output
    made = runner.invoke(app, ["token", "create", "op", "--role", "operator", "--center", "119"])
    assert made.exit_code == 0
    assert runner.invoke(app, ["token", "revoke", "1"]).exit_code == 0
    again = runner.invoke(app, ["token", "revoke", "1"])
    assert again.exit_code == 2 and "no live token" in again.output


def test_every_command_has_help():
    for args in (["--help"], ["serve", "--help"], ["city", "load", "--help"], ["token", "create", "--help"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0 and "Usage" in result.output
