"""The fine-dust (29 March 2024) and heat-wave (31 July – 3 August 2018) demo scenarios: their files
keep the published figures, the replay passes through them, and a headless run raises (and, for
the dust, lifts) the warnings at the hours Seoul announced them."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta

from sqlalchemy import select
from typer.testing import CliRunner

from haechi.alerts.cap import from_xml, validate
from haechi.cli import app
from haechi.core.clock import KST
from haechi.demo.replay import instant_times, interpolate, scenario, steps
from haechi.store import areas, open_db
from haechi.store.schema import alerts, observations, warnings


def kst(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=KST)


def rows(name: str) -> list[dict[str, str]]:
    with open(scenario(name).file, encoding="utf-8") as f:
        return list(csv.DictReader(f))


def replayed(name: str) -> dict[tuple[str, datetime], float]:
    """(series, time) → the value the replay sends, with made-up datastream ids."""
    chosen = scenario(name)
    ids = {s["column"]: i for i, s in enumerate(chosen.series, start=1)}
    back = {i: c for c, i in ids.items()}
    return {(back[r.datastream_id], at): r.result for at, readings in steps(chosen, ids) for r in readings}


# ── the pure reconstruction ────────────────────────────────────────────────────────────────


def test_interpolate_is_linear_between_published_points_and_flat_outside():
    points = [(kst("2024-03-29 03:00"), 370.0), (kst("2024-03-29 08:00"), 440.0), (kst("2024-03-29 09:00"), 449.0)]
    times = [kst(f"2024-03-29 {h:02d}:00") for h in (1, 3, 4, 8, 9, 12)]
    assert interpolate(points, times) == [370.0, 370.0, 384.0, 440.0, 449.0, 449.0]
    assert interpolate(points, [kst("2024-03-29 08:30")]) == [444.5]


def test_instant_times_keep_every_published_time_off_the_grid():
    points = [(kst("2018-07-31 04:30"), 28.5), (kst("2018-07-31 15:19"), 38.3), (kst("2018-07-31 16:00"), 38.3)]
    times = instant_times([points], timedelta(hours=1))
    assert times[0] == kst("2018-07-31 04:00") and times[-1] == kst("2018-07-31 16:00")
    assert kst("2018-07-31 04:30") in times and kst("2018-07-31 15:19") in times
    assert kst("2018-07-31 10:00") in times and times == sorted(set(times))
    assert instant_times([points], timedelta(hours=1), kst("2018-07-31 18:00"))[-1] == kst("2018-07-31 18:00")


# ── the files keep the published figures (hand-checked against the reports) ───────────────


def test_dust_file_keeps_the_published_hourly_means():
    published = {r["time_kst"]: float(r["value"]) for r in rows("asian-dust-2024") if r["basis"] == "published"}
    assert published == {"2024-03-29 03:00": 370, "2024-03-29 08:00": 440, "2024-03-29 09:00": 449,
                         "2024-03-29 13:00": 141, "2024-03-29 15:00": 91, "2024-03-29 16:00": 93}
    assert all(r["source"] and r["basis"] in ("published", "derived") for r in rows("asian-dust-2024"))
    sent = replayed("asian-dust-2024")
    for at, value in published.items():
        assert sent[("seoul-pm10", kst(at))] == value
    assert sent[("seoul-pm10", kst("2024-03-29 14:00"))] == 116  # halfway between 141 and 91


def test_heat_file_keeps_the_published_temperatures():
    ta = {r["time_kst"]: float(r["value"]) for r in rows("heat-wave-2018") if r["series"] == "asos-108-ta"}
    assert ta["2018-07-31 15:19"] == 38.3 and ta["2018-08-01 15:36"] == 39.6  # the record, 15:36 on 1 Aug
    assert ta["2018-08-02 06:00"] == 30.3 and ta["2018-08-02 15:00"] == 37.9 and ta["2018-08-03 06:00"] == 30.4
    bases = {r["basis"] for r in rows("heat-wave-2018")}
    assert bases == {"published", "forecast", "assumed"} and all(r["source"] for r in rows("heat-wave-2018"))
    assert {r["basis"] for r in rows("heat-wave-2018") if r["series"] == "asos-108-rh"} == {"assumed"}
    sent = replayed("heat-wave-2018")
    for at, value in ta.items():
        assert sent[("asos-108-ta", kst(at))] == value
    day_max = max(v for (c, at), v in sent.items() if c == "asos-108-ta" and at.date().isoformat() == "2018-08-01")
    assert day_max == 39.6  # the replay does not invent a hotter hour


# ── headless runs through the real pipeline and warnings engine ─────────────────────────────


def run(tmp_path, monkeypatch, name: str):
    monkeypatch.setenv("COLUMNS", "200")
    url = f"sqlite:///{tmp_path / (name + '.db')}"
    result = CliRunner().invoke(app, ["demo", "--headless", "--speed", "0", "--scenario", name, "--database-url", url])
    assert result.exit_code == 0, result.output
    return result.output, open_db(url)


def test_headless_dust_raises_and_lifts_the_pm10_warning_at_the_published_hours(tmp_path, monkeypatch):
    output, engine = run(tmp_path, monkeypatch, "asian-dust-2024")
    # Seoul: 주의보 01:00, 경보 03:00, 경보 → 주의보 13:00, 주의보 해제 15:00 (news1, chosun, donga 2024-03-29)
    assert "2024-03-29 01:00 KST  fine_dust · city:11  발령 issued" in output
    assert "2024-03-29 03:00 KST  fine_dust · city:11  변경 updated" in output
    assert "2024-03-29 13:00 KST  fine_dust · city:11  변경 updated" in output
    assert "2024-03-29 15:00 KST  fine_dust · city:11  해제 lifted" in output
    assert "미세먼지(PM10) 주의보 → 미세먼지(PM10) 경보 상향" in output
    with engine.connect() as conn:
        sent = conn.execute(select(alerts.c.msg_type, alerts.c.cap_xml, alerts.c.area_codes)
                            .order_by(alerts.c.id)).all()
        assert [(w.hazard, w.status) for w in conn.execute(select(warnings))] == [("fine_dust", "cancelled")]
        districts = {a["code"].ljust(10, "0") for a in areas.list_areas(conn, level="district", parent="11")}
    assert [m for m, _, _ in sent] == ["Alert", "Update", "Update", "Cancel"]
    assert len(districts) == 25
    for _, xml, codes in sent:
        validate(xml)
        # The mean of Seoul's 25 districts warns the whole city, as Seoul's advisory and warning did.
        assert districts <= set(codes)
        assert "서울특별시" in from_xml(xml).infos[0].areas[0].area_desc


def test_headless_heat_wave_raises_the_warning_and_keeps_it(tmp_path, monkeypatch):
    output, engine = run(tmp_path, monkeypatch, "heat-wave-2018")
    assert "heat_wave · district:11110  발령 issued" in output and "폭염주의보 → 폭염경보 상향" in output
    assert "2018-07-31" not in output.split("scenario over")[0].split("speed")[1]  # one day is not a heat wave
    with engine.connect() as conn:
        [warning] = conn.execute(select(warnings)).all()
        sent = conn.execute(select(alerts.c.cap_xml, alerts.c.crisis_level)).all()
        qualities = {q for (q,) in conn.execute(select(observations.c.result_quality))}
    assert (warning.hazard, warning.level, warning.status) == ("heat_wave", "warning", "active")
    assert warning.issued_at.astimezone(KST).date().isoformat() == "2018-08-01"
    assert qualities == {"good"}  # the assumed steady humidity is not flagged as a stuck sensor
    assert any(level == "alert" for _, level in sent)  # 폭염경보: crisis level 경계
    for xml, _ in sent:
        validate(xml)
    listing = CliRunner().invoke(app, ["demo", "--list"]).output
    assert "heat-wave-2018" in listing and "asian-dust-2024" in listing
