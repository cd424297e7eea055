"""Running a demo: the scenario replayed through the pipeline, with a live timeline in the terminal,
either headless (in-process, exits when the scenario ends) or beside the running server."""

from __future__ import annotations

import asyncio
from datetime import datetime

from rich.console import Console
from rich.markup import escape
from sqlalchemy import Engine

from haechi.bus.memory import InProcessBus
from haechi.core.events import Bus, Event
from haechi.ingest.pipeline import Pipeline
from haechi.ingest.queue import LocalSink, Sink
from haechi.warnings.criteria import CRISIS_KO
from haechi.warnings.service import WarningService

from .replay import Scenario, replay, resolve, steps

KIND_KO = {"issue": "발령 issued", "update": "변경 updated", "cancel": "해제 lifted"}


def show_timeline(bus: Bus, console: Console) -> None:
    """Print each warning change and its alert headline as they happen."""

    async def on_change(event: Event) -> None:
        d = event.data
        at = datetime.fromisoformat(d["at"]).strftime("%Y-%m-%d %H:%M")
        level = f"{CRISIS_KO.get(d['crisis_level'], '')} {d['crisis_level'] or ''}".strip() or "—"
        console.print(f"[bold]{at} KST[/bold]  {d['hazard']} · {d['area']}  "
                      f"[yellow]{KIND_KO[d['kind']]}[/yellow]  ({level}, {d['value']:.4g})")

    async def on_alert(event: Event) -> None:
        headlines = event.data.get("headline", {})
        for lang in ("ko-KR", "en-US"):
            if lang in headlines:
                console.print(escape(f"    CAP {event.data['msg_type']} [{lang}] {headlines[lang]}"))

    bus.subscribe("warning.changed", on_change)
    bus.subscribe("alert.sent", on_alert)


async def play(sink: Sink, chosen: Scenario, engine: Engine, speed: float, console: Console) -> int:
    timeline = steps(chosen, resolve(engine, chosen))
    console.print(f"[bold]{chosen.title_ko} · {chosen.title_en}[/bold] — {len(timeline)} steps, "
                  f"{timeline[0][0]:%Y-%m-%d} to {timeline[-1][0]:%Y-%m-%d}, speed ×{speed:g}")
    with console.status("replaying…") as status:
        sent = await replay(sink, timeline, speed, lambda at, n, total: status.update(
            f"replaying {at:%Y-%m-%d %H:%M} KST · step {n}/{total}"))
    console.print(f"scenario over: {sent} observations replayed")
    return sent


async def headless(engine: Engine, chosen: Scenario, speed: float, console: Console) -> int:
    """The scenario in-process: pipeline, warnings and alerts, printed; returns when it ends."""
    bus = InProcessBus()
    pipeline = Pipeline(engine, bus=bus)
    await asyncio.to_thread(pipeline.warm)
    warnings = WarningService(engine, bus)
    warnings.start()
    show_timeline(bus, console)
    try:
        return await play(LocalSink(pipeline), chosen, engine, speed, console)
    finally:
        warnings.stop()
