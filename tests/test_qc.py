"""Quality control: each check on hand-made series, and properties that must hold for any input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from haechi.ingest import qc
from haechi.model.catalogue import catalogue

LEVEL = catalogue()["water_level"].limits  # -5..30 m, 0.5 m/min, stuck after 72 readings
T0 = datetime(2020, 8, 6, 5, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=1)


def run(values, step=timedelta(minutes=10), limits=LEVEL):
    """Flags of a series fed through assess/remember as the pipeline does."""
    memory, flags = qc.StreamMemory(), []
    for i, value in enumerate(values):
        time = T0 + i * step
        flag, _ = qc.step(value, time, time, memory, limits)
        flags.append(flag)
    return flags


def test_range_below_at_and_above():
    assert run([-5.0]) == ["good"] and run([30.0]) == ["good"]  # the limits themselves are plausible
    assert run([-5.01]) == ["bad"] and run([30.01]) == ["bad"]


def test_a_spike_is_suspect_and_the_level_after_it_is_judged_against_the_last_good_one():
    # 0.5 m/min over 10 minutes allows 5 m; 8.2 → 14.0 is a 5.8 m jump
    assert run([8.0, 8.2, 14.0, 8.3]) == ["good", "good", "suspect", "good"]


def test_a_real_step_change_heals_once_the_rate_is_plausible():
    # 8.2 → 14.0 in 10 min is a spike; 20 min after the last good reading 5.8 m is 0.29 m/min
    assert run([8.2, 14.0, 14.0, 14.1]) == ["good", "suspect", "good", "good"]


def test_a_real_flood_rise_is_not_a_spike():
    # Hangang Bridge, 6 Aug 2020: about +0.2 m per 10 minutes at the steepest
    assert set(run([6.0 + 0.2 * i for i in range(20)])) == {"good"}


def test_stuck_sensor_after_n_identical_readings():
    flags = run([3.21] * 80)
    assert flags[:71] == ["good"] * 71 and flags[71:] == ["suspect"] * 9  # from the 72nd equal reading


def test_stuck_count_zero_disables_the_test():
    rain = catalogue()["rainfall"].limits
    assert set(run([0.0] * 500, limits=rain)) == {"good"}  # dry weather reports zero for days


def test_clock_future_and_far_past():
    memory = qc.StreamMemory()
    assert qc.assess(5.0, NOW + timedelta(minutes=6), NOW, memory, LEVEL)[0] == "bad"
    assert qc.assess(5.0, NOW + timedelta(minutes=4), NOW, memory, LEVEL)[0] == "good"
    flag, reasons = qc.assess(5.0, datetime(1970, 1, 1, tzinfo=UTC), NOW, memory, LEVEL)
    assert flag == "bad" and "old" in reasons[0]


def test_bad_and_late_readings_do_not_move_the_memory():
    memory = qc.StreamMemory()
    qc.step(5.0, T0, NOW, memory, LEVEL)
    assert qc.step(99.0, T0 + timedelta(minutes=10), NOW, memory, LEVEL)[0] == "bad"
    assert qc.step(4.0, T0 - timedelta(minutes=10), NOW, memory, LEVEL)[0] == "good"  # late, still stored
    assert (memory.last_value, memory.last_time) == (5.0, T0)


def test_silent_streams_are_those_past_three_intervals():
    streams = [(1, NOW - timedelta(minutes=29), 600), (2, NOW - timedelta(minutes=31), 600), (3, None, 600)]
    assert list(qc.silent(streams, NOW)) == [2]


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@given(st.lists(finite, min_size=1, max_size=60))
def test_out_of_range_is_always_bad_and_in_range_never_bad(values):
    for value, flag in zip(values, run(values), strict=True):
        assert (flag == "bad") == (not LEVEL.min <= value <= LEVEL.max)


@given(st.lists(st.floats(min_value=-5, max_value=30), min_size=2, max_size=60))
def test_flags_are_only_the_three_known_and_memory_only_holds_plausible_values(values):
    memory = qc.StreamMemory()
    for i, value in enumerate(values):
        time = T0 + i * timedelta(minutes=10)
        flag, reasons = qc.step(value, time, time, memory, LEVEL)
        assert flag in ("good", "suspect", "bad")
        assert (flag == "good") == (reasons == [])
        assert LEVEL.min <= memory.last_value <= LEVEL.max
