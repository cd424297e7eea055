"""Data-mart refresh for one year of 1,000 stations at hourly resolution (8.76 million rows).

    .venv/bin/python -m benchmarks.marts [--stations 1000] [--days 365] [--repeat 3]

Target (issue 7): mart refresh ≤ 10 s. The lake is generated in Haechi's own layout
(observations/date=…/property=…/part-….parquet plus the datastream dimension over 25 districts),
then ``haechi.warehouse.marts.refresh`` builds every mart from it. Figures beside each other, same
run: the full rebuild of the year (the non-incremental baseline, and the figure the target is on)
and the incremental refresh after one more day arrives (what a nightly `haechi mart refresh` does).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

from benchmarks.common import median, timed
from haechi.warehouse import lake, marts

START = datetime(2023, 1, 1, tzinfo=UTC) - timedelta(hours=9)  # 00:00 KST on 1 January 2023
PROPERTIES = ("water_level", "rainfall", "pm10")


def write_dimension(folder: Path, stations: int) -> None:
    rows = [{"datastream_id": i, "name": f"s{i}", "property": PROPERTIES[i % 3], "unit_symbol": "",
             "thing_id": i, "station": f"s{i}", "place_kind": "bench", "place_ref": str(i), "source": "bench",
             "area_code": f"11{110 + 10 * (i % 25)}", "district_code": f"11{110 + 10 * (i % 25)}",
             "lon": 126.9, "lat": 37.5, "interval_s": 3600.0} for i in range(1, stations + 1)]
    lake.write_atomically(pa.Table.from_pylist(rows, schema=lake.DIMENSIONS["datastreams"]),
                          folder / "dimensions" / "datastreams.parquet")


def write_day(folder: Path, day: int, stations: int, rng: np.random.Generator) -> int:
    """One local day: an hourly reading per station, in one file per property."""
    dataset = lake.DATASETS["observations"]
    ids = np.arange(1, stations + 1, dtype=np.int64)
    hours = np.arange(24, dtype=np.int64)
    written = 0
    for k, prop in enumerate(PROPERTIES):
        mine = ids[ids % 3 == k]
        stream = np.repeat(mine, 24)
        hour = np.tile(hours, len(mine))
        base = int((START + timedelta(days=day)).timestamp() * 1_000_000)
        times = base + hour * 3_600_000_000
        quality = np.where(rng.random(len(stream)) < 0.01, "suspect", "good")
        table = pa.table({
            "id": (day * stations * 24 + np.arange(len(stream)) + written).astype(np.int64),
            "datastream_id": stream, "phenomenon_time": pa.array(times, lake.UTC_TS),
            "result": rng.gamma(2.0, 2.0, len(stream)), "result_quality": quality,
            "received_at": pa.array(times + 60_000_000, lake.UTC_TS)})
        local = (date(2023, 1, 1) + timedelta(days=day)).isoformat()
        lake.write_atomically(table, lake.partition_dir(folder, dataset, local, prop) / "part-000000000000.parquet")
        written += len(stream)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stations", type=int, default=1000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "lake"
        write_dimension(folder, args.stations)
        rows = sum(write_day(folder, d, args.stations, rng) for d in range(args.days))
        print(f"lake: {rows:,} observations ({args.stations} stations × {args.days} days × 24 h)")
        fulls, incrementals = [], []
        for run in range(args.repeat):
            shutil.rmtree(folder / "marts", ignore_errors=True)
            fulls.append(timed(lambda: marts.refresh(folder, full=True)))
            write_day(folder, args.days + run, args.stations, rng)  # the next day arrives
            incrementals.append(timed(lambda: marts.refresh(folder)))
            print(f"run {run + 1}: full rebuild {fulls[-1]:.2f} s, incremental (+1 day) {incrementals[-1]:.2f} s")
        hourly = marts.connect(folder).execute("SELECT count(*) FROM mart_station_hourly").fetchall()[0][0]
        full, incremental = median(fulls), median(incrementals)
        print(f"station_hourly rows: {hourly:,}")
        print(f"full rebuild (baseline): median {full:.2f} s = {rows / full:,.0f} rows/s; target ≤ 10 s: "
              f"{'met' if full <= 10 else 'MISSED'}")
        print(f"incremental refresh (+1 day): median {incremental:.2f} s; ratio full/incremental "
              f"{full / incremental:.1f}×")
        print("load average (1, 5, 15 min) at the end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
