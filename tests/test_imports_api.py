"""Imports over HTTP and the command line, and a pull from a live SensorThings server."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest
from conftest import LiveServer
from sqlalchemy import func, select
from test_api_support import assert_problem, build_world
from typer.testing import CliRunner

from haechi.api import create_app
from haechi.cli import app as cli_app
from haechi.core.errors import InvalidInput
from haechi.core.settings import get_settings
from haechi.imports import run_import
from haechi.store import deadletters, open_db
from haechi.store.schema import datastreams, import_runs, observations

DATA = Path(__file__).parent / "data" / "imports"


@pytest.fixture
def world(engine):
    return build_world(engine)


def test_an_operator_uploads_a_kma_file_and_sees_the_run(world):
    body = (DATA / "kma_asos_broken.csv").read_bytes()
    response = world.client.post("/api/v1/imports/kma-asos?filename=asos_202008.csv", content=body,
                                 headers=world.auth("operator") | {"content-type": "text/csv"})
    assert response.status_code == 201, response.text
    outcome = response.json()
    assert (outcome["rows_accepted"], outcome["rows_rejected"], outcome["encoding"]) == (2, 4, "utf-8")
    assert outcome["rejections"][0] == {"row": 2, "field": "기온(°C)", "reason": "not a number: 'abc'"}
    runs = world.client.get("/api/v1/imports", headers=world.auth("operator")).json()
    assert runs[0]["source"] == "asos_202008.csv" and runs[0]["status"] == "done" and runs[0]["actor"]
    with world.engine.connect() as conn:
        assert len(deadletters.pending(conn, source="import:kma-asos")) == 4


def test_imports_need_an_operator(world):
    body = (DATA / "kma_asos_hourly.csv").read_bytes()
    for role in ("citizen", "district_official"):
        response = world.client.post("/api/v1/imports/kma-asos", content=body, headers=world.auth(role))
        assert_problem(response, 403)
    assert_problem(world.client.post("/api/v1/imports/kma-asos", content=body), 401)
    with world.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(import_runs)).scalar() == 0


def test_bad_uploads_are_problems_naming_the_field(world):
    operator = world.auth("operator")
    assert_problem(world.client.post("/api/v1/imports/weather", content=b"x", headers=operator), 422, "kind")
    wrong = world.client.post("/api/v1/imports/kma-asos", content=(DATA / "airkorea_final.csv").read_bytes(),
                              headers=operator)
    assert "missing 일시, 지점" in assert_problem(wrong, 422, "header")["detail"]
    assert_problem(world.client.post("/api/v1/imports/sensorthings", headers=operator), 422, "url")
    failed = world.client.get("/api/v1/imports?kind=kma-asos", headers=operator).json()
    assert failed[0]["status"] == "failed" and "missing" in failed[0]["error"]


def test_a_mapped_upload_takes_its_mapping_in_the_query(world):
    mapping = quote((DATA / "mapped_levels.toml").read_text(encoding="utf-8"))
    response = world.client.post(f"/api/v1/imports/mapped?filename=levels.csv&mapping={mapping}",
                                 content=(DATA / "mapped_levels.csv").read_bytes(), headers=world.auth("operator"))
    assert response.status_code == 201, response.text
    assert (response.json()["rows_accepted"], response.json()["rows_rejected"]) == (2, 1)


@pytest.fixture
def remote_engine(tmp_path):
    """The remote server's own DB (not the one under test)."""
    remote = open_db(f"sqlite:///{tmp_path / 'remote.db'}")
    yield remote
    remote.dispose()


def test_sensorthings_pull_from_a_live_server_then_only_new_readings(engine, remote_engine):
    """Our own /sta/v1.1 as the remote: its readings come over HTTP with paging, then re-pull is all duplicates."""
    run_import(remote_engine, "kma-asos", str(DATA / "kma_asos_hourly.csv"), actor="remote")
    with LiveServer(create_app(remote_engine)) as remote:
        # Two entities per page: every collection is read by following @iot.nextLink.
        outcome = run_import(engine, "sensorthings", f"{remote.url}/sta/v1.1", actor="test", page=2)
        assert (outcome.rows_read, outcome.rows_accepted, outcome.rows_rejected) == (23, 23, 0)
        again = run_import(engine, "sensorthings", f"{remote.url}/sta/v1.1", actor="test")
    assert (again.rows_accepted, again.rows_duplicate) == (0, 23)
    with engine.connect() as conn:
        local = conn.execute(select(datastreams.c.name, datastreams.c.unit_symbol, datastreams.c.properties)).all()
        assert conn.execute(select(func.count()).select_from(observations)).scalar() == 23
    assert len(local) == 8  # 2 stations × 4 properties, made once
    assert {u for _, u, _ in local} == {"Cel", "mm", "m/s", "%"}
    assert all(p["imported_from"].endswith("/sta/v1.1") for _, _, p in local)


def test_sensorthings_pull_from_nowhere_is_refused(engine):
    with pytest.raises(InvalidInput, match="could not read"):
        run_import(engine, "sensorthings", "http://127.0.0.1:9/sta/v1.1", actor="test")


def test_the_command_imports_with_a_summary_in_korean_and_english(db_url, monkeypatch):
    monkeypatch.setenv("HAECHI_DATABASE_URL", db_url)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        first = runner.invoke(cli_app, ["import", "airkorea", str(DATA / "airkorea_broken.csv")])
        assert first.exit_code == 0, first.output
        assert "rejected · 거부" in first.output and "PM10: not a number: '8x5'" in first.output
        refused = runner.invoke(cli_app, ["import", "kma-asos", str(DATA / "hrfco_rainfall.json")])
        assert refused.exit_code == 1 and "refused · 거부됨" in refused.output
    finally:
        get_settings.cache_clear()


@pytest.fixture
def file_server():
    """A plain HTTP server of the sample folder, as a portal's download link would be."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(DATA)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join(timeout=10)


def test_a_url_is_downloaded_with_progress_then_imported(engine, file_server):
    seen = []
    outcome = run_import(engine, "airkorea", f"{file_server}/airkorea_final.csv", actor="test",
                         progress=lambda done, total: seen.append((done, total)))
    assert (outcome.rows_accepted, outcome.encoding, outcome.source) == (
        5, "cp949", f"{file_server}/airkorea_final.csv")
    size = (DATA / "airkorea_final.csv").stat().st_size
    assert (size, size) in seen  # the download reported its bytes
    with pytest.raises(InvalidInput, match="could not fetch"):
        run_import(engine, "airkorea", f"{file_server}/nothing.csv", actor="test")
