"""QC on real Han River streams (../shared/data): the 2020 flood passes, the known faults are caught."""

from __future__ import annotations

import csv
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from conftest import SHARED_DATA

from haechi.ingest import qc
from haechi.model.catalogue import catalogue

GAUGES = SHARED_DATA / "han-river-gauges"
KST = timezone(timedelta(hours=9))
pytestmark = pytest.mark.skipif(not GAUGES.exists(), reason="../shared/data/han-river-gauges is not here")


def flags_of(year: int, column: str, prop: str, scale: float, since: str = "", until: str = "9999"):
    limits, memory, out = catalogue()[prop].limits, qc.StreamMemory(), []
    with open(GAUGES / f"data_{year}.csv", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row[column] == "":
                continue
            time = datetime.fromisoformat(row["ymdhm"]).replace(tzinfo=KST)
            flag, _ = qc.step(float(row[column]) * scale, time, time, memory, limits)
            if since <= row["ymdhm"] < until:
                out.append((row["ymdhm"], flag))
    return out


def test_the_august_2020_flood_rise_is_all_good_at_every_seoul_gauge():
    for gauge in ("1018662", "1018680", "1018683", "1019630"):
        flood = flags_of(2020, f"wl_{gauge}", "water_level", 0.01, "2020-08-01", "2020-08-11")
        assert len(flood) > 1000
        assert Counter(f for _, f in flood) == {"good": len(flood)}, gauge


def test_negative_flows_are_bad_and_the_june_2022_flat_zero_fault_is_caught():
    flows = flags_of(2020, "fw_1018683", "discharge", 1.0)
    assert any(f == "bad" for _, f in flows)
    level = dict(flags_of(2022, "wl_1018662", "water_level", 0.01, "2022-06-01", "2022-07-01"))
    assert level["2022-06-10 00:00"] == "suspect"  # reads 0.0 for weeks


def test_a_normal_year_is_at_least_99_percent_good():
    flags = Counter(f for _, f in flags_of(2019, "wl_1018683", "water_level", 0.01))
    assert flags["good"] / sum(flags.values()) > 0.99
