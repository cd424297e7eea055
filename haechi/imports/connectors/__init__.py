"""Scheduled pull connectors for the official Korean open APIs (docs/connectors.md).

AirKorea real-time measurements, KMA ASOS hourly observations, HRFCO water levels and Seoul's S-DoT
sensors, each configured in ``connectors.toml``: service keys from the environment, paging, a rate
limit per API, retries with back-off, gap backfill from each station's newest stored observation,
and storage through the ingest pipeline (a re-run stores nothing twice). ``haechi connect`` runs them
by hand; the engine runs them on their intervals (``schedule.run_due``).
"""

from .feeds import Feed, feeds
from .runner import RunReport, run_feed

__all__ = ["Feed", "RunReport", "feeds", "run_feed"]
