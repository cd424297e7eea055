"""Derive the observed demo scenarios from the public data in ../shared/data.

    python -m haechi.demo.derive [path/to/shared/data]

Writes, in ``scenarios/``:

- ``han-river-flood-2020.csv``: the 10-minute gauge values of 1–10 August 2020 (``han-river-gauges``),
  levels in metres (Hangang Bridge as gauge height), flows in m³/s; empty where the source is empty.
- ``heat-wave-2018.csv``: Seoul's hourly air temperature (°C) and relative humidity (%) of
  15 July – 19 August 2018 (``weather``), as published.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

HERE = Path(__file__).parent / "scenarios"
DEFAULT_SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
HANGANG_DATUM_M = 2.07  # gauge zero of the Hangang Bridge gauge, as in cities/seoul/gauges.csv

#: scenario column → (source column, scale to the scenario unit, offset in the scenario unit)
FLOOD_COLUMNS = {
    "hangang_level_m": ("wl_1018683", 0.01, -HANGANG_DATUM_M),
    "hangang_flow_m3s": ("fw_1018683", 1.0, 0.0),
    "jamsu_level_m": ("wl_1018680", 0.01, 0.0),
    "jamsu_flow_m3s": ("fw_1018680", 1.0, 0.0),
    "cheongdam_flow_m3s": ("fw_1018662", 1.0, 0.0),
    "haengju_level_m": ("wl_1019630", 0.01, 0.0),
    "haengju_flow_m3s": ("fw_1019630", 1.0, 0.0),
    "paldang_release_m3s": ("tototf", 1.0, 0.0),
}

HEAT_SOURCE = "seoul-hourly-2017-12-to-2018-11.csv"
#: From the last days whose apparent temperature stayed under 33 °C to two days after the heat broke.
HEAT_DAYS = ("2018-07-15", "2018-08-19")
#: scenario column → source column (values copied as published: °C, %)
HEAT_COLUMNS = {"temperature_c": "Temperature(C)", "humidity_pct": "Humidity(percentage)"}


def flood(source: Path) -> str:
    """The flood scenario's text, from ``data_2020.csv`` in ``source`` (the han-river-gauges folder)."""
    with open(source / "data_2020.csv", encoding="utf-8") as f:
        rows = ([row["ymdhm"], *(_scaled(row[src], scale, offset) for src, scale, offset in FLOOD_COLUMNS.values())]
                for row in csv.DictReader(f) if "2020-08-01" <= row["ymdhm"] < "2020-08-11")
        return _csv(["time_kst", *FLOOD_COLUMNS], rows)


def heat_wave(source: Path) -> str:
    """The heat-wave scenario's text, from the hourly Seoul series in ``source`` (the weather folder).

    The source writes the day as d/m/yyyy and the hour apart (0–23, the observation on the hour).
    """
    first, last = HEAT_DAYS
    with open(source / HEAT_SOURCE, encoding="latin-1", newline="") as f:
        rows = []
        for row in csv.DictReader(f):
            at = f"{_iso_day(row['Date'])} {int(row['Hour']):02d}:00"
            if first <= at[:10] <= last:
                rows.append([at, *(row[src] for src in HEAT_COLUMNS.values())])
    return _csv(["time_kst", *HEAT_COLUMNS], sorted(rows))


#: scenario file → (derivation, the folder of ../shared/data it reads)
DERIVED: dict[str, tuple[Callable[[Path], str], str]] = {
    "han-river-flood-2020.csv": (flood, "han-river-gauges"),
    "heat-wave-2018.csv": (heat_wave, "weather"),
}


def derive(name: str, shared: Path = DEFAULT_SHARED) -> str:
    """The text of scenario file ``name``, derived from the shared data folder ``shared``."""
    how, folder = DERIVED[name]
    return how(shared / folder)


def _iso_day(day_month_year: str) -> str:
    day, month, year = (int(part) for part in day_month_year.split("/"))
    return f"{year:04d}-{month:02d}-{day:02d}"


def _scaled(text: str, scale: float, offset: float) -> str:
    return "" if text == "" else f"{float(text) * scale + offset:.3f}".rstrip("0").rstrip(".")


def _csv(header: list[str], rows: Iterable[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


if __name__ == "__main__":
    shared = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SHARED
    for name in DERIVED:
        (HERE / name).write_text(derive(name, shared), encoding="utf-8")
        print(f"wrote {HERE / name}")
