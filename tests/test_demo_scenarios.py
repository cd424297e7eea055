"""The fine-dust (29 March 2024) and heat-wave (15 July – 19 August 2018) demo scenarios: the dust
file keeps the published figures and a headless run raises and lifts the warning at the hours Seoul
announced them; the heat wave replays the observed hourly series, and its warnings come at the hours
the heat-wave rules give on those observations."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta
from itertools import pairwise

from sqlalchemy import select
from typer.testing import CliRunner

from haechi.alerts.cap import from_xml, validate
from haechi.cli import app
from haechi.core.clock import KST
from haechi.demo.replay import instant_times, interpolate, scenario, steps
from haechi.demo.run import KIND_KO as KIND
from haechi.model.apparent import apparent_temperature
from haechi.store import areas, open_db
from haechi.store.schema import alerts, observations, warnings
from haechi.warnings.criteria import load_criteria


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


def test_heat_file_is_the_observed_hourly_series():
    hours = [kst(r["time_kst"]) for r in rows("heat-wave-2018")]
    assert hours[0] == kst("2018-07-15 00:00") and hours[-1] == kst("2018-08-19 23:00")
    assert all(b - a == timedelta(hours=1) for a, b in pairwise(hours))  # every hour, none missing
    first_of_august = [r for r in rows("heat-wave-2018") if r["time_kst"].startswith("2018-08-01")]
    hottest = max(first_of_august, key=lambda r: float(r["temperature_c"]))
    # the record day, as the source's own check reads it (../shared/data/weather/SOURCE.txt)
    assert (hottest["time_kst"], hottest["temperature_c"]) == ("2018-08-01 16:00", "39.4")
    sent = replayed("heat-wave-2018")
    assert len(sent) == 2 * len(hours)
    assert sent[("temperature_c", kst("2018-08-01 16:00"))] == 39.4
    assert sent[("humidity_pct", kst("2018-08-01 16:00"))] == float(hottest["humidity_pct"])


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


def rule_changes(name: str) -> list[tuple[datetime, str, str | None]]:
    """(time, kind, level) of each heat-wave change the official rules give on the scenario's file.

    The rules (heat_wave.csv): a level is reached once the daily maximum of the KMA apparent
    temperature has met its threshold on as many consecutive days as its persistence, today's maximum
    so far included; it comes down once its lifting rule has held for whole days; a warning lifted
    becomes the advisory if that still holds (경보 → 주의보)."""
    rules = sorted((c for c in load_criteria() if c.hazard == "heat_wave" and c.property == "apparent_temperature_max"),
                   key=lambda c: c.rank)
    day_max: dict = {}

    def qualified(c, day) -> bool:
        return all(c.met(day_max.get(day - timedelta(days=d), float("-inf"))) for d in range(c.persistence.days))

    def lifted(c, day) -> bool:
        return all(c.lifted(day_max.get(day - timedelta(days=d), float("inf")))
                   for d in range(1, c.lift_persistence.days + 1))

    level, changes = None, []
    for r in rows(name):
        at = kst(r["time_kst"])
        apparent = apparent_temperature(float(r["temperature_c"]), float(r["humidity_pct"]))
        day_max[at.date()] = max(day_max.get(at.date(), apparent), apparent)
        top = next((c for c in reversed(rules) if qualified(c, at.date())), None)
        if level is None or (top is not None and top.rank > level.rank):
            now = top
        elif not lifted(level, at.date()):
            now = level
        else:
            now = next((c for c in reversed(rules) if c.rank < level.rank
                        and (qualified(c, at.date()) or not lifted(c, at.date()))), None)
        if now is not level:
            changes.append((at, "issue" if level is None else "cancel" if now is None else "update",
                            now and now.level))
            level = now
    return changes


def test_headless_heat_wave_warns_when_the_rules_say_on_the_observed_hours(tmp_path, monkeypatch):
    expected = rule_changes("heat-wave-2018")
    # What the rules make of 2018 (a sanity check on the reference, not the times themselves): the
    # advisory, a warning, its lowering and return as the afternoons cooled and rose, and the end.
    assert expected[0][1:] == ("issue", "advisory") and expected[-1][1:] == ("cancel", None)
    assert {"advisory", "warning"} <= {level for _, _, level in expected}

    output, engine = run(tmp_path, monkeypatch, "heat-wave-2018")
    printed = [line.split("  (")[0] for line in output.splitlines() if "heat_wave · " in line]
    assert printed == [f"{at:%Y-%m-%d %H:%M} KST  heat_wave · city:11  {KIND[kind]}" for at, kind, _ in expected]
    assert "폭염주의보 → 폭염경보 상향" in output and "폭염경보 → 폭염주의보 하향" in output
    with engine.connect() as conn:
        [warning] = conn.execute(select(warnings)).all()
        sent = conn.execute(select(alerts.c.msg_type, alerts.c.cap_xml, alerts.c.crisis_level, alerts.c.area_codes)
                            .order_by(alerts.c.id)).all()
        qualities = {q for (q,) in conn.execute(select(observations.c.result_quality))}
        districts = {a["code"].ljust(10, "0") for a in areas.list_areas(conn, level="district", parent="11")}
    assert (warning.hazard, warning.status) == ("heat_wave", "cancelled")
    assert qualities == {"good"}  # the observed hours pass QC as they are
    cap_types = {"issue": "Alert", "update": "Update", "cancel": "Cancel"}
    assert [m for m, *_ in sent] == [cap_types[kind] for _, kind, _ in expected]
    levels = {"advisory": "caution", "warning": "alert"}
    assert [level for _, _, level, _ in sent[:-1]] == [levels[lv] for _, _, lv in expected[:-1]]
    for _, xml, _, codes in sent:
        validate(xml)
        assert districts <= set(codes)  # a city-level series warns the whole city, as 2018's one 특보구역
    listing = CliRunner().invoke(app, ["demo", "--list"]).output
    assert "heat-wave-2018" in listing and "asian-dust-2024" in listing
