"""The warnings engine on hand-made series: below, at, above, flapping, gaps, lifting — every rule."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from haechi.core.clock import KST
from haechi.model.apparent import apparent_temperature
from haechi.warnings.criteria import load_criteria
from haechi.warnings.engine import RuleEngine, StreamInfo

T0 = datetime(2024, 3, 5, 0, 0, tzinfo=KST)
HOUR = timedelta(hours=1)
STREAMS = {
    1: StreamInfo(1, "pm10", "11680", thing_id=10, interval_s=3600),
    2: StreamInfo(2, "pm25", "11680", thing_id=10, interval_s=3600),
    3: StreamInfo(3, "pm10", "11650", thing_id=11, interval_s=3600),
    4: StreamInfo(4, "rainfall", "11590", thing_id=12, interval_s=600),
    5: StreamInfo(5, "water_level", "11590", thing_id=13, place_kind="river_gauge", place_ref="1018683"),
    6: StreamInfo(6, "water_level", "11170", thing_id=14, place_kind="river_gauge", place_ref="1018680"),
    7: StreamInfo(7, "air_temperature", "11110", thing_id=15, interval_s=3600),
    8: StreamInfo(8, "relative_humidity", "11110", thing_id=15, interval_s=3600),
    9: StreamInfo(9, "pm10", "11740", thing_id=16, interval_s=3600),
}


@pytest.fixture
def engine():
    return RuleEngine(load_criteria(), STREAMS.get)


def feed(engine, stream, values, start=T0, step=HOUR):
    """(hour index, kind, level) of every change while feeding ``values`` one ``step`` apart."""
    out = []
    for i, value in enumerate(values):
        for c in engine.observe(stream, start + i * step, value):
            out.append((i, c.kind, c.criterion.level if c.criterion else None))
    return out


# ── fine dust: hourly means held 2 h; lifted below 100 (PM10) ──

def test_pm10_below_the_advisory_never_warns(engine):
    assert feed(engine, 1, [149, 149, 149, 149]) == []


def test_pm10_at_the_advisory_for_two_hours_issues_it(engine):
    assert feed(engine, 1, [150, 150]) == [(1, "issue", "advisory")]


def test_pm10_above_for_one_hour_only_does_not_issue(engine):
    assert feed(engine, 1, [200, 90, 200, 90]) == []


def test_pm10_escalates_to_warning_and_comes_down_only_below_the_lifting_levels(engine):
    changes = feed(engine, 1, [160, 160, 310, 310, 200, 140, 120, 99])
    assert changes == [(1, "issue", "advisory"), (3, "update", "warning"),
                       (5, "update", "advisory"), (7, "cancel", None)]  # 140: below 150 lifts the warning


def test_pm10_hovering_at_the_threshold_does_not_flap(engine):
    # issued at 150; 120–160 never falls below the lifting level of 100
    assert feed(engine, 1, [150, 155, 120, 160, 130, 149, 151, 125]) == [(1, "issue", "advisory")]


def test_a_gap_in_the_data_restarts_the_persistence_count(engine):
    engine.observe(1, T0, 200)
    assert engine.observe(1, T0 + 5 * HOUR, 200) == []  # 5 h of silence: not "2 h held"
    [issued] = engine.observe(1, T0 + 6 * HOUR, 200)
    assert issued.kind == "issue"


def test_silence_does_not_lift_a_warning(engine):
    feed(engine, 1, [200, 200])
    assert feed(engine, 1, [200], start=T0 + 30 * HOUR) == []  # back after a gap, still high
    assert engine.active()[("fine_dust", "district:11680")].level == "advisory"


def test_suspect_and_bad_readings_never_count(engine):
    assert engine.observe(1, T0, 900, "bad") == [] and engine.observe(1, T0 + HOUR, 900, "suspect") == []
    assert engine.active() == {}


def test_pm25_rules(engine):
    assert feed(engine, 2, [75, 75, 150, 150, 74, 34]) == [
        (1, "issue", "advisory"), (3, "update", "warning"), (4, "update", "advisory"), (5, "cancel", None)]


# ── one warning per hazard × area ──

def test_two_pollutants_in_one_district_make_one_warning(engine):
    assert feed(engine, 1, [160, 160]) == [(1, "issue", "advisory")]
    assert feed(engine, 2, [80, 80]) == []  # the same fine-dust advisory for Gangnam: no duplicate
    assert feed(engine, 2, [160, 160], start=T0 + 2 * HOUR) == [(1, "update", "warning")]
    assert list(engine.active()) == [("fine_dust", "district:11680")]


def test_districts_are_warned_separately(engine):
    feed(engine, 1, [160, 160])
    feed(engine, 3, [160, 160])
    assert set(engine.active()) == {("fine_dust", "district:11680"), ("fine_dust", "district:11650")}


# ── heavy rain: 3 h ≥ 60 mm or 12 h ≥ 110 mm (advisory); 90 / 180 mm (warning) ──

def test_rain_3h_accumulation(engine):
    ten = timedelta(minutes=10)
    # 18 ten-minute values of 3.3 mm: 59.4 mm in 3 h (below); then the first drops out and
    # 3.9 mm arrives: exactly 60.0 mm in the trailing 3 h — at the threshold is in
    assert feed(engine, 4, [3.3] * 18, step=ten) == []
    assert feed(engine, 4, [3.9], start=T0 + 18 * ten, step=ten) == [(0, "issue", "advisory")]


def test_rain_12h_accumulation_without_a_3h_burst(engine):
    ten = timedelta(minutes=10)
    changes = feed(engine, 4, [1.6] * 72, step=ten)  # 9.6 mm/h: never 60 mm in 3 h, 115 mm in 12 h
    assert changes == [(68, "issue", "advisory")]  # 69 × 1.6 = 110.4 mm


def test_rain_warning_then_lifted_when_it_stops(engine):
    ten = timedelta(minutes=10)
    changes = feed(engine, 4, [5.5] * 18 + [0.0] * 100, step=ten)
    kinds = [(k, lvl) for _, k, lvl in changes]
    assert kinds[:2] == [("issue", "advisory"), ("update", "warning")]
    assert kinds[-1] == ("cancel", None)


# ── river flood stages: Hangang Bridge 8.5 / 10.5 m; hysteresis 0.3 m held 1 h ──

def test_river_stage_with_hysteresis(engine):
    ten = timedelta(minutes=10)
    levels = [8.4, 8.5, 8.3, 8.45, 10.6, 10.4, 10.1, 10.0, 9.9, 9.8, 9.7, 9.6, 9.5, 8.1, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0]
    changes = feed(engine, 5, levels, step=ten)
    # below 10.2 m from reading 6: an hour held at reading 11; below 8.2 m from reading 13: held at 18
    assert changes == [(1, "issue", "advisory"), (4, "update", "warning"), (11, "update", "advisory"),
                       (18, "cancel", None)]


def test_gauges_without_stages_never_warn(engine):
    assert feed(engine, 6, [20.0, 20.0], step=timedelta(minutes=10)) == []  # Jamsu: no official stages


# ── heat wave: daily max apparent temperature ≥ 33 °C on 2 days ──

def test_apparent_temperature_matches_the_kma_test_vectors():
    for ta, rh, expected in [(20, 50, 19.801), (33, 55, 32.978), (35, 30, 32.036), (35, 80, 37.246),
                             (32, 70, 33.323), (31, 90, 33.895)]:
        assert apparent_temperature(ta, rh) == pytest.approx(expected, abs=0.001)


def _summer_day(engine, day, ta_peak, rh):
    start = datetime(2024, 8, day, 0, 0, tzinfo=KST)
    changes = []
    for hour in range(24):
        ta = ta_peak - abs(hour - 15) * 0.6
        t = start + hour * HOUR
        changes += engine.observe(8, t, rh) + engine.observe(7, t, ta)
    return [(c.kind, c.criterion.level if c.criterion else None) for c in changes]


def test_heat_wave_needs_two_days(engine):
    assert _summer_day(engine, 1, 33.0, 70) == []  # day 1 above 33 °C apparent
    assert _summer_day(engine, 2, 33.0, 70) == [("issue", "advisory")]
    assert _summer_day(engine, 3, 35.5, 70) == []  # one day at 35 °C is not yet a warning
    assert _summer_day(engine, 4, 35.5, 70) == [("update", "warning")]
    assert _summer_day(engine, 5, 28.0, 50) == []  # cool day: lifted only once it is over
    assert _summer_day(engine, 6, 28.0, 50)[:1] == [("cancel", None)]


def test_dry_heat_below_33_apparent_is_no_heat_wave(engine):
    assert _summer_day(engine, 1, 34.0, 30) + _summer_day(engine, 2, 34.0, 30) == []


@pytest.mark.parametrize("criterion", [c for c in load_criteria() if c.property != "apparent_temperature_max"],
                         ids=lambda c: f"{c.hazard}-{c.level}-{c.property}-{c.scope}-{c.window}")
def test_every_criterion_row_issues_above_and_stays_quiet_below(criterion):
    """Each row alone: a steady series just above its value for its persistence issues its level."""
    c = criterion
    scope, _, rest = c.scope.partition(":")
    info = StreamInfo(1, c.property, "11680", thing_id=1, place_ref=rest if scope == "gauge" else None,
                      facility_type=rest.split(":")[0] if scope == "facility" else None, interval_s=60)
    step = timedelta(minutes=1)
    per_window = max(int(c.window / step), 1)
    span = int((c.window + c.persistence) / step) + 2

    def run(factor):
        value = c.value * factor / (per_window if c.aggregate == "sum" else 1)
        return feed(RuleEngine([c], {1: info}.get), 1, [value] * span, step=step)

    [(_, kind, level)] = run(1.001)
    assert (kind, level) == ("issue", c.level)
    assert run(0.99) == []


def test_a_restored_warning_is_lifted_after_a_restart(engine):
    assert engine.restore(5, "river_flood", "advisory")  # in force before the restart
    assert list(engine.active()) == [("river_flood", "gauge:1018683")]
    ten = timedelta(minutes=10)
    changes = feed(engine, 5, [8.0] * 7, step=ten)
    assert changes == [(5, "cancel", None)]  # six readings below 8.2 m: an hour held
    assert not engine.restore(5, "river_flood", "no-such-level")
