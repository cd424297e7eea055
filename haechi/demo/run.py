"""Running a demo: the scenario replayed through the pipeline, with a live timeline in the terminal,
either headless (in-process, exits when the scenario ends) or beside the running server."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from rich.console import Console
from rich.markup import escape
from sqlalchemy import Engine

from haechi.core.clock import KST, utcnow
from haechi.core.events import Bus, Event
from haechi.core.settings import get_settings
from haechi.ingest.queue import Sink
from haechi.model.events import ALERT_SENT, WARNING_CHANGED
from haechi.model.hazards import CRISIS_KO
from haechi.runtime import Context, Role, Runtime
from haechi.runtime.parts import PARTS

from .replay import Scenario, replay, resolve, steps

KIND_KO = {"issue": "발령 issued", "update": "변경 updated", "cancel": "해제 lifted"}


def show_timeline(bus: Bus, console: Console) -> None:
    """Print each warning change and its alert headline as they happen."""

    async def on_change(event: Event) -> None:
        d = event.data
        at = datetime.fromisoformat(d["at"]).astimezone(KST).strftime("%Y-%m-%d %H:%M")
        level = f"{CRISIS_KO.get(d['crisis_level'], '')} {d['crisis_level'] or ''}".strip() or "—"
        console.print(f"[bold]{at} KST[/bold]  {d['hazard']} · {d['area']}  "
                      f"[yellow]{KIND_KO[d['kind']]}[/yellow]  ({level}, {d['value']:.4g})")

    async def on_alert(event: Event) -> None:
        headlines = event.data.get("headline", {})
        for lang in ("ko-KR", "en-US"):
            if lang in headlines:
                console.print(escape(f"    CAP {event.data['msg_type']} [{lang}] {headlines[lang]}"))

    bus.subscribe(WARNING_CHANGED, on_change)
    bus.subscribe(ALERT_SENT, on_alert)


class ScenarioClock:
    """The replay's time: a headless replay sends its alerts in the scenario's time, so the stored
    record (and an after-action report of it) reads as the event did."""

    def __init__(self) -> None:
        self.at: datetime | None = None

    def set(self, at: datetime) -> None:
        self.at = at.astimezone(UTC)

    def now(self) -> datetime:
        return self.at or utcnow()


async def play(sink: Sink, chosen: Scenario, engine: Engine, speed: float, console: Console,
               clock: ScenarioClock | None = None, settle: Callable[[], Awaitable[None]] | None = None) -> int:
    if chosen.simulation:
        return await asyncio.to_thread(what_if, engine, chosen, console)
    timeline = steps(chosen, resolve(engine, chosen))
    console.print(f"[bold]{chosen.title_ko} · {chosen.title_en}[/bold] — {len(timeline)} steps, "
                  f"{timeline[0][0]:%Y-%m-%d} to {timeline[-1][0]:%Y-%m-%d}, speed ×{speed:g}")

    def step(at: datetime, n: int, total: int) -> None:
        if clock is not None:
            clock.set(at)
        status.update(f"replaying {at:%Y-%m-%d %H:%M} KST · step {n}/{total}")
    with console.status("replaying…") as status:
        sent = await replay(sink, timeline, speed, step, settle)
    console.print(f"scenario over: {sent} observations replayed")
    return sent


async def headless(engine: Engine, chosen: Scenario, speed: float, console: Console) -> int:
    """The scenario in-process: the engine role as the server runs it (warnings, forecasts, alerts …)
    on the scenario's clock, with the timeline printed; returns when the scenario ends."""
    clock = ScenarioClock()
    # In-process whatever the environment says: no NATS, no brokers.
    settings = get_settings().model_copy(update={"bus_url": None, "mqtt_url": None, "care_mqtt_url": None})
    context = Context.of(engine, settings, now=clock.now, name="haechi-demo")
    runtime = Runtime(PARTS, {Role.ENGINE}, context)
    show_timeline(context.bus, console)
    await runtime.start()
    try:
        forecaster = context.objects.get("forecaster")  # forecasts run off the ingest path: wait for each step's
        return await play(context.sink, chosen, engine, speed, console, clock, forecaster and forecaster.settled)
    finally:
        await runtime.stop()


def what_if(engine: Engine, chosen: Scenario, console: Console) -> int:
    """Run a what-if scenario as a stored simulation (live state untouched) and print what it found."""
    from haechi.simulation import runs

    with engine.begin() as conn:
        run = runs.create(conn, chosen.simulation, runs.accept(engine, chosen.simulation, chosen.params), "demo")
    console.print(f"[bold]{chosen.title_ko} · {chosen.title_en}[/bold] — simulation {run['id']} ({chosen.simulation})")
    with console.status("simulating…") as status:
        done = runs.execute(engine, run["id"], lambda n, total, what: status.update(f"{what} · {n}/{total}"))
    if done["status"] != "done":
        console.print(f"[red]simulation {done['status']}[/red]: {done.get('error') or ''}")
        return 0
    result = done["result"]
    summary = result["summary"]
    console.print(f"strongest shaking: intensity {summary['max_mmi']} (MMI), PGA {summary['max_pga_g']} g; "
                  f"{summary['areas_mmi_6_plus']} of {summary['areas']} dongs at intensity VI or more; "
                  f"{summary.get('population_mmi_6_plus', 0):,} residents there")
    worst = sorted(result["areas"], key=lambda a: -a["mmi"])[:5]
    console.print("most shaken dongs: " + ", ".join(f"{a['name_ko']} (MMI {a['mmi']})" for a in worst))
    for item in result.get("inspection", [])[:5]:
        console.print(escape(f"    inspect first: {item['name_ko']} ({item['role']}), "
                             f"P(moderate damage or worse) {item['p_moderate_or_worse']:.0%}"))
    for note in summary.get("notes", []):
        console.print(escape(f"    note: {note}"))
    console.print(f"map layer: /api/v1/simulations/{run['id']}/layer · scenario over")
    return len(result["areas"])
