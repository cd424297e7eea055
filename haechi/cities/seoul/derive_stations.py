"""Derive the pack's monitoring-network place files from the published station lists.

    python haechi/cities/seoul/derive_stations.py [SHARED_DATA]

SHARED_DATA defaults to the project's shared data beside the checkout. Writes, in this folder:

- ``weather_stations.csv``: KMA's ASOS 108 and the AWS stations of Seoul that are open (no end date)
  in KMA's station metadata (``weather/stations/seoul-current.csv``); each station's own numbers.
- ``sdot_sensors.csv``: the 851 S-DoT sensors of March 2020 (``sdot/sensors-2020-03.csv``).

Only KOGL Type 1 data is copied (SOURCES.md). The AirKorea station list is not: ``pack.toml`` reads it
from the shared data in its published form. No value is changed here, only columns renamed and
closed stations left out; English names are automatic romanizations (not official).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from korean_romanizer.romanizer import Romanizer

HERE = Path(__file__).parent
SHARED = HERE.parents[3] / "shared" / "data"
WEATHER = "weather/stations/seoul-current.csv"
SDOT = "sdot/sensors-2020-03.csv"

WEATHER_COLUMNS = ("ref", "name_ko", "name_en", "lon", "lat", "network", "alt_m", "position_since", "address")
SDOT_COLUMNS = ("ref", "name_ko", "name_en", "lon", "lat", "model")


def weather_rows(shared: Path) -> list[dict[str, str]]:
    """Open stations only: a closed one (422 북악산, 2018) has no readings to show or warn on."""
    with open(shared / WEATHER, encoding="utf-8") as f:
        return [{
            "ref": r["stn_id"], "name_ko": r["name"], "name_en": Romanizer(r["name"]).romanize().capitalize(),
            "lon": r["lon"], "lat": r["lat"], "network": r["kind"], "alt_m": r["alt_m"],
            "position_since": r["position_since"], "address": r["address"],
        } for r in csv.DictReader(f) if not r["end_date"]]


def sdot_rows(shared: Path) -> list[dict[str, str]]:
    """The serial is the sensor's id in S-DoT's feed; its first four characters are the model (V02Q)."""
    with open(shared / SDOT, encoding="utf-8") as f:
        return [{
            "ref": r["serial"], "name_ko": f"도시데이터 센서 {r['serial']}", "name_en": f"S-DoT sensor {r['serial']}",
            "lon": r["lon"], "lat": r["lat"], "model": r["serial"][:4],
        } for r in csv.DictReader(f)]


def write(path: Path, columns: tuple[str, ...], rows: list[dict[str, str]]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def main(shared: Path = SHARED) -> None:
    write(HERE / "weather_stations.csv", WEATHER_COLUMNS, weather_rows(shared))
    write(HERE / "sdot_sensors.csv", SDOT_COLUMNS, sdot_rows(shared))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else SHARED)
