"""`haechi demo`: the August 2020 flood replayed from real observations raises and lifts the
Hangang Bridge flood advisory, as it happened on 6 August 2020."""

from __future__ import annotations

import pytest
from conftest import SHARED_DATA
from sqlalchemy import select
from typer.testing import CliRunner

from haechi.alerts.cap import validate
from haechi.cli import app
from haechi.demo.derive import TARGET, derive
from haechi.store import open_db
from haechi.store.schema import alerts, warnings


@pytest.mark.skipif(not (SHARED_DATA / "han-river-gauges").exists(), reason="../shared/data is not here")
def test_the_scenario_file_is_derived_from_the_shared_observations():
    assert TARGET.read_text(encoding="utf-8") == derive(SHARED_DATA / "han-river-gauges")


def test_the_scenario_holds_the_flood_peak():
    rows = {line.split(",")[0]: line.split(",") for line in TARGET.read_text(encoding="utf-8").splitlines()[1:]}
    assert len(rows) == 1440  # ten days of 10-minute steps
    assert float(rows["2020-08-06 14:20"][1]) == 8.73  # Hangang Bridge gauge height at the peak


def test_headless_demo_prints_the_flood_advisory_and_its_lifting(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    result = CliRunner().invoke(app, ["demo", "--headless", "--speed", "0", "--database-url", url])
    assert result.exit_code == 0, result.output
    assert "2020-08-06 12:00 KST  river_flood · gauge:1018683  발령 issued" in result.output
    assert "해제 lifted" in result.output and "scenario over" in result.output
    assert "[ko-KR] [서울특별시]" in result.output and "flood advisory" in result.output
    engine = open_db(url)
    with engine.connect() as conn:
        stored = conn.execute(select(alerts.c.msg_type, alerts.c.cap_xml).order_by(alerts.c.id)).all()
        assert [w.status for w in conn.execute(select(warnings))] == ["cancelled"]
    assert [m for m, _ in stored] == ["Alert", "Cancel"]
    for _, xml in stored:
        validate(xml)
    assert CliRunner().invoke(app, ["demo", "--list"]).output.count("han-river-flood-2020") == 1
