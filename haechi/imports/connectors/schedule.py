"""The connectors in the engine's schedule: one job looks every ``tick_s`` for connectors that are due
(each on its own interval from connectors.toml) and runs them one after another. A connector whose
key is unset stays off (``haechi connect status`` says so); its first run is at the first tick."""

from __future__ import annotations

import logging
from datetime import datetime

from .feeds import feeds
from .runner import run_feed

log = logging.getLogger(__name__)


def due(last_runs: dict[str, datetime], interval_s: dict[str, float], now: datetime) -> list[str]:
    """Connectors never run by this process, or run at least their interval ago."""
    return [name for name, interval in interval_s.items()
            if name not in last_runs or (now - last_runs[name]).total_seconds() >= interval]


def _injected(context) -> dict:
    """What a composition root (or a test) hands the connectors: an HTTP transport, a sleep."""
    names = {"connector_transport": "transport", "connector_sleep": "sleep"}
    return {arg: context.options[option] for option, arg in names.items() if option in context.options}


async def run_due(context) -> None:
    """The engine job: run every due connector with a key, through this process's ingest pipeline."""
    last_runs: dict[str, datetime] = context.objects.setdefault("connector_runs", {})
    configured = {name: feed for name, feed in feeds().items() if feed.key()}
    now = context.now()
    for name in due(last_runs, {n: f.interval_s for n, f in configured.items()}, now):
        last_runs[name] = now
        report = await run_feed(configured[name], context.engine, context.pipeline, now=now, **_injected(context))
        level = logging.INFO if report.status in ("ok", "empty") else logging.WARNING
        log.log(level, "connector %s: %s, %d stored, %d duplicates, %d rejected%s", name, report.status,
                report.stored, report.duplicates, report.rejected, f" ({report.detail})" if report.detail else "")
