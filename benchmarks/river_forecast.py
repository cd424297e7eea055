"""River stage forecast error on held-out years, beside persistence, per gauge and horizon.

Reads ``../shared/data/han-river-gauges`` (HRFCO 10-minute records), evaluates the shipped
coefficients (``haechi/predict/data/river_arx.json``, fitted on 2012–2019) on May–October 2020 and
2021, and prints RMSE and MAE in metres for the model and for persistence (the level stays as it is)
on the same rows: all rows, and the top 1 % of levels (floods). ``--refit`` fits again first and
checks the refit gives the shipped figures.

    .venv/bin/python benchmarks/river_forecast.py [path/to/han-river-gauges] [--refit]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from haechi.predict import river

NAMES = {"1018662": "Cheongdam 청담대교", "1018680": "Jamsu 잠수교", "1018683": "Hangang 한강대교",
         "1019630": "Haengju 행주대교"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("source", nargs="?",
                        default=str(Path(__file__).resolve().parents[2] / "shared/data/han-river-gauges"))
    parser.add_argument("--refit", action="store_true")
    args = parser.parse_args()
    source = Path(args.source)
    if not source.exists():
        sys.exit(f"no data at {source}: this benchmark needs the HRFCO records of ../shared/data")
    model = river.shipped()["coefficients"]
    if args.refit:
        started = time.perf_counter()
        model = river.fit([river.read_year(source, y) for y in river.TRAIN_YEARS])
        print(f"refit on {river.TRAIN_YEARS.start}–{river.TRAIN_YEARS.stop - 1} in "
              f"{time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    scores = river.backtest(model, [river.read_year(source, y) for y in river.TEST_YEARS])
    print(f"held-out {'–'.join(map(str, river.TEST_YEARS))} (May–Oct, 10-minute steps), evaluated in "
          f"{time.perf_counter() - started:.1f} s")
    print(f"{'gauge':<20}{'h':>3}{'n':>8}{'RMSE':>8}{'pers.':>8}{'ratio':>7}{'MAE':>8}{'pers.':>8}"
          f"{'flood RMSE':>12}{'pers.':>8}")
    for s in scores:
        print(f"{NAMES[s['gauge']]:<20}{s['horizon_h']:>3}{s['n']:>8}{s['rmse_m']:>8.3f}{s['persistence_rmse_m']:>8.3f}"
              f"{s['rmse_m'] / s['persistence_rmse_m']:>7.2f}{s['mae_m']:>8.3f}{s['persistence_mae_m']:>8.3f}"
              f"{s['flood_rmse_m']:>12.3f}{s['flood_persistence_rmse_m']:>8.3f}")
    print("metres; 'pers.' = persistence on the same rows; flood = rows in the top 1 % of each gauge's levels")


if __name__ == "__main__":
    main()
