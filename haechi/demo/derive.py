"""Derive the August 2020 flood scenario from the Han River gauge observations in ../shared/data.

    python -m haechi.demo.derive [path/to/han-river-gauges]

Writes ``scenarios/han-river-flood-2020.csv``: the 10-minute values of 1–10 August 2020, levels
in metres (Hangang Bridge as gauge height), flows in m³/s; empty where the source is empty.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

HERE = Path(__file__).parent / "scenarios"
TARGET = HERE / "han-river-flood-2020.csv"
DEFAULT_SOURCE = Path(__file__).resolve().parents[3] / "shared" / "data" / "han-river-gauges"
HANGANG_DATUM_M = 2.07  # gauge zero of the Hangang Bridge gauge, as in cities/seoul/gauges.csv

#: scenario column → (source column, scale to the scenario unit, offset in the scenario unit)
COLUMNS = {
    "hangang_level_m": ("wl_1018683", 0.01, -HANGANG_DATUM_M),
    "hangang_flow_m3s": ("fw_1018683", 1.0, 0.0),
    "jamsu_level_m": ("wl_1018680", 0.01, 0.0),
    "jamsu_flow_m3s": ("fw_1018680", 1.0, 0.0),
    "cheongdam_flow_m3s": ("fw_1018662", 1.0, 0.0),
    "haengju_level_m": ("wl_1019630", 0.01, 0.0),
    "haengju_flow_m3s": ("fw_1019630", 1.0, 0.0),
    "paldang_release_m3s": ("tototf", 1.0, 0.0),
}


def derive(source: Path = DEFAULT_SOURCE) -> str:
    """The scenario CSV's text, from ``data_2020.csv`` in ``source``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["time_kst", *COLUMNS])
    with open(source / "data_2020.csv", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if "2020-08-01" <= row["ymdhm"] < "2020-08-11":
                writer.writerow([row["ymdhm"], *(_value(row[src], scale, offset)
                                                 for src, scale, offset in COLUMNS.values())])
    return out.getvalue()


def _value(text: str, scale: float, offset: float) -> str:
    return "" if text == "" else f"{float(text) * scale + offset:.3f}".rstrip("0").rstrip(".")


if __name__ == "__main__":
    TARGET.write_text(derive(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SOURCE), encoding="utf-8")
    print(f"wrote {TARGET}")
