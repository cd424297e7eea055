"""`haechi demo`: the August 2020 flood replayed from real observations raises and lifts the
Hangang Bridge flood advisory, as it happened on 6 August 2020; the observed scenario files are
derived from ../shared/data."""

from __future__ import annotations

import pytest
from conftest import SHARED_DATA
from sqlalchemy import select
from typer.testing import CliRunner

from haechi.alerts.cap import validate
from haechi.cli import app
from haechi.demo.derive import DERIVED, HERE, derive
from haechi.store import open_db
from haechi.store.schema import alerts, warnings


@pytest.mark.parametrize("name", sorted(DERIVED))
def test_the_scenario_file_is_derived_from_the_shared_observations(name):
    if not (SHARED_DATA / DERIVED[name][1]).exists():
        pytest.skip("../shared/data is not here")
    assert (HERE / name).read_text(encoding="utf-8") == derive(name, SHARED_DATA)


def test_the_scenario_holds_the_flood_peak():
    text = (HERE / "han-river-flood-2020.csv").read_text(encoding="utf-8")
    rows = {line.split(",")[0]: line.split(",") for line in text.splitlines()[1:]}
    assert len(rows) == 1440  # ten days of 10-minute steps
    assert float(rows["2020-08-06 14:20"][1]) == 8.73  # Hangang Bridge gauge height at the peak


def test_headless_demo_prints_the_flood_advisory_and_its_lifting(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    result = CliRunner().invoke(app, ["demo", "--headless", "--speed", "0", "--database-url", url])
    assert result.exit_code == 0, result.output
    # The river model, run on each reading, forecasts the crossing: the advisory comes at 10:30,
    # 90 minutes before the gauge itself reaches the flood stage (12:00).
    assert "2020-08-06 10:30 KST  river_flood · gauge:1018683  발령 issued" in result.output
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


# ── the 2022 heavy rain, reconstructed from published accumulations ─────────────────────


def test_reconstructed_rain_keeps_every_published_accumulation():
    from datetime import datetime, timedelta

    from haechi.core.clock import KST
    from haechi.demo.replay import scenario, spread

    chosen = scenario("heavy-rain-2022")
    rows = [line.split(",") for line in chosen.file.read_text(encoding="utf-8").splitlines()[1:]]
    dongjak = [(datetime.fromisoformat(r[1]).replace(tzinfo=KST), float(r[2])) for r in rows if r[0] == "aws-dongjak"]
    start = datetime(2022, 8, 8, tzinfo=KST)
    times = [start + timedelta(minutes=10 * i) for i in range(1, 6 * 33 + 1)]
    amounts = dict(zip(times, spread(dongjak, times), strict=True))

    def by(hour_of_scenario: int) -> float:
        return round(sum(v for t, v in amounts.items() if t <= start + timedelta(hours=hour_of_scenario)), 1)

    assert by(21) == 297 and by(22) == 360.5 and by(24) == 381.5 and by(32) == 422
    assert round(by(21) - by(20), 1) == 136.5  # the record hour stays whole
    assert by(6) == 0


def test_headless_heavy_rain_warns_the_south_and_spares_the_north(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    url = f"sqlite:///{tmp_path / 'rain.db'}"
    result = CliRunner().invoke(app, ["demo", "--headless", "--speed", "0", "--scenario", "heavy-rain-2022",
                                      "--database-url", url])
    assert result.exit_code == 0, result.output
    assert "동작구 호우주의보 → 호우경보 상향" in " ".join(result.output.split())  # however the terminal wraps
    engine = open_db(url)
    with engine.connect() as conn:
        warned = {w.area_key for w in conn.execute(select(warnings))}
        sent = conn.execute(select(alerts.c.cap_xml, alerts.c.crisis_level, alerts.c.area_codes)).all()
    assert {"district:11590", "district:11650", "district:11680"} <= warned  # Dongjak, Seocho, Gangnam
    assert "district:11350" not in warned  # Nowon: about 5 mm by 21:00
    assert any(level == "alert" and "1159000000" in codes for _, level, codes in sent)  # 호우경보, Dongjak
    for xml, _, _ in sent:
        validate(xml)
    listing = CliRunner().invoke(app, ["demo", "--list"]).output
    assert "heavy-rain-2022" in listing and "2022년 8월 8–9일 서울 집중호우" in listing


def test_the_earthquake_what_if_is_a_stored_simulation_that_leaves_live_state_alone(tmp_path, monkeypatch):
    from haechi.store.schema import observations
    from haechi.store.schema import simulations as runs

    monkeypatch.setenv("COLUMNS", "200")
    url = f"sqlite:///{tmp_path / 'quake.db'}"
    result = CliRunner().invoke(app, ["demo", "--headless", "--scenario", "earthquake-what-if", "--database-url", url])
    assert result.exit_code == 0, result.output
    assert "most shaken dongs" in result.output and "inspect first" in result.output
    engine = open_db(url)
    with engine.connect() as conn:
        [run] = conn.execute(select(runs.c.kind, runs.c.status, runs.c.result)).all()
        assert conn.execute(select(warnings)).all() == [] and conn.execute(select(observations)).all() == []
    assert (run.kind, run.status) == ("quake", "done")
    assert run.result["summary"]["magnitude"] == 5.8 and run.result["summary"]["max_mmi"] >= 6
