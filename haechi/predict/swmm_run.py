"""Running an EPA SWMM 5 drainage model through pyswmm, when a city has one for a drainage area.

Where a SWMM network of a drainage area exists (``.inp`` file), it replaces the curve-number
estimate of :mod:`flood` for that area: SWMM routes the runoff through the real pipes (dynamic wave)
and reports which nodes flood and for how long. The rainfall of the scenario replaces the network's
``RAIN`` time series, so the same storm drives both methods. ``swmm/test_network.inp`` is a small
made-up network for tests, not a Seoul drainage area: the city has published none that we could ship.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from haechi.core.errors import InvalidInput

TEST_NETWORK = Path(__file__).with_name("swmm") / "test_network.inp"
RAIN_SERIES = "RAIN"


def with_rainfall(inp_text: str, rain_mm: Sequence[float], step_min: int) -> str:
    """The network's text with its ``RAIN`` series and gauge interval set to the storm (mm per step)."""
    if not rain_mm:
        raise InvalidInput("rainfall is empty: give at least one step of rain in mm", field="rainfall_mm")
    if any(v < 0 for v in rain_mm):
        raise InvalidInput("rainfall must be numbers ≥ 0 mm per step", field="rainfall_mm")
    if "[TIMESERIES]" not in inp_text or "[RAINGAGES]" not in inp_text:
        raise InvalidInput("the SWMM network has no [TIMESERIES] or [RAINGAGES] section", field="network")
    hours, minutes = divmod(step_min, 60)
    interval = f"{hours}:{minutes:02d}"
    lines = [f"{RAIN_SERIES}  {(i * step_min) // 60}:{(i * step_min) % 60:02d}  {v * 60 / step_min:.3f}"
             for i, v in enumerate([*rain_mm, 0.0])]  # SWMM INTENSITY format: mm/h over the interval
    text = re.sub(rf"(?m)^{RAIN_SERIES}\s+.*\n?", "", inp_text)
    text = text.replace("[TIMESERIES]\n", "[TIMESERIES]\n" + "\n".join(lines) + "\n", 1)
    return re.sub(r"(?m)^(\S+\s+INTENSITY\s+)\S+", rf"\g<1>{interval}", text)


def run(inp_text: str, rain_mm: Sequence[float], step_min: int = 10, progress=None) -> dict[str, Any]:
    """Run the network on the storm; per node: flooding volume (m³) and hours flooded and surcharged."""
    from pyswmm import (  # optional at import time: only this path needs it
        Nodes,
        Simulation,
        Subcatchments,
    )

    with tempfile.TemporaryDirectory(prefix="haechi-swmm-") as folder:
        path = Path(folder) / "network.inp"
        path.write_text(with_rainfall(inp_text, rain_mm, step_min), encoding="utf-8")
        with Simulation(str(path)) as sim:
            nodes = {n.nodeid: n for n in Nodes(sim)}
            subcatchments = {s.subcatchmentid: s for s in Subcatchments(sim)}
            sim.step_advance(600)
            for _ in sim:
                if progress is not None:
                    progress(int(sim.percent_complete * 100), 100, "swmm")
            node_stats = {nid: dict(n.statistics) for nid, n in nodes.items()}
            runoff = {sid: dict(s.statistics) for sid, s in subcatchments.items()}
            errors = sim.flow_routing_error
    return {
        "nodes": [{"id": nid, "flooding_m3": round(s["flooding_volume"], 2),
                   "flooding_hours": round(s["flooding_duration"], 3),
                   "surcharge_hours": round(s["surcharge_duration"], 3), "max_depth_m": round(s["max_depth"], 3)}
                  for nid, s in node_stats.items()],
        "subcatchments": [{"id": sid, "runoff_m3": round(s["runoff"], 1),
                           "precipitation_mm": round(s["precipitation"], 1)}
                          for sid, s in runoff.items()],
        "flow_routing_error_pct": round(errors, 3),
    }
