"""``haechi simulate quake|flood|heat|crowd``: a what-if run with a progress bar; Ctrl-C cancels it."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from haechi.core.clikit import DatabaseUrl, console, fail
from haechi.core.errors import HaechiError
from haechi.core.settings import get_settings

ParamOption = Annotated[
    list[str] | None, typer.Option("--param", "-p", help="Scenario field as key=value (JSON values allowed); repeat.")
]
ParamsFile = Annotated[Path | None, typer.Option("--params-file", help="Scenario as a JSON object.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the whole result as JSON.")]


def install(simulate_app: typer.Typer) -> None:
    """Add the simulation kinds to ``haechi simulate`` (next to ``simulate sensors``)."""
    simulate_app.command("quake")(simulate_quake)
    for kind in ("flood", "heat", "crowd"):
        simulate_app.command(kind, help=f"Run a {kind} what-if (가상 시뮬레이션); "
                                        "scenario from --param/--params-file.")(
            _generic(kind)
        )
    simulate_app.command("runs")(list_runs)


def simulate_quake(
    lon: Annotated[float, typer.Option(help="Epicentre longitude · 진앙 경도")],
    lat: Annotated[float, typer.Option(help="Epicentre latitude · 진앙 위도")],
    magnitude: Annotated[float, typer.Option("--magnitude", "-m", help="Moment magnitude · 규모 (5–8)")],
    depth_km: Annotated[float, typer.Option("--depth", help="Focal depth, km · 진원 깊이")] = 10.0,
    vs30: Annotated[float | None, typer.Option(help="Site Vs30 (m/s); reference rock 760 when left out")] = None,
    mechanism: Annotated[str, typer.Option(help="unspecified, strike_slip, normal or reverse")] = "unspecified",
    top: Annotated[int, typer.Option(help="Rows of the tables shown")] = 10,
    as_json: AsJson = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Earthquake damage scenario (지진 피해 시나리오): shaking and damage per dong, inspection list."""
    params = {"lon": lon, "lat": lat, "magnitude": magnitude, "depth_km": depth_km, "mechanism": mechanism}
    if vs30 is not None:
        params["vs30"] = vs30
    run = _run("quake", params, database_url)
    _show(run, as_json, top)


def _generic(kind: str):
    def command(param: ParamOption = None, params_file: ParamsFile = None, as_json: AsJson = False,
                top: Annotated[int, typer.Option(help="Rows of the tables shown")] = 10,
                database_url: DatabaseUrl = None) -> None:
        params = _params(param or [], params_file)
        _show(_run(kind, params, database_url), as_json, top)

    command.__name__ = f"simulate_{kind}"
    return command


def _params(pairs: list[str], path: Path | None) -> dict[str, Any]:
    params: dict[str, Any] = json.loads(path.read_text()) if path else {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise _fail(HaechiError(f"--param {pair!r}: write key=value"))
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


_fail = fail


def _run(kind: str, params: dict[str, Any], database_url: str | None) -> dict[str, Any]:
    """Store the scenario, run it in a thread under a progress bar; Ctrl-C asks it to cancel."""
    from haechi.simulation import runs
    from haechi.store import open_db

    engine = open_db(database_url or get_settings().database_url)
    try:
        model = runs.accept(engine, kind, params)
        with engine.begin() as conn:
            run = runs.create(conn, kind, model, "cli")
    except HaechiError as exc:
        raise _fail(exc) from exc
    console.print(f"simulation {run['id']} ({kind}) — Ctrl-C cancels · Ctrl-C로 취소")
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
               TimeElapsedColumn())
    finished: dict[str, Any] = {}
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(kind, total=1.0)

        def show(done: int, total: int, what: str) -> None:
            bar.update(task, completed=done / total if total else 0, description=f"{kind}: {what}")

        worker = threading.Thread(target=lambda: finished.update(run=runs.execute(engine, run["id"], show)))
        worker.start()
        try:
            while worker.is_alive():
                worker.join(0.1)
        except KeyboardInterrupt:
            with engine.begin() as conn:
                runs.request_cancel(conn, run["id"])
            console.print("cancelling … · 취소 중")
            worker.join()
    return finished["run"]


def _show(run: dict[str, Any], as_json: bool, top: int) -> None:
    if as_json:
        console.print_json(json.dumps(run, default=str, ensure_ascii=False))
        return
    status = run["status"]
    colour = {"done": "green", "cancelled": "yellow"}.get(status, "red")
    console.print(f"[{colour}]{status}[/{colour}]: simulation {run['id']}" +
                  (f" — {run['error']}" if run.get("error") else ""))
    if status != "done":
        if status != "cancelled":
            raise typer.Exit(code=1)
        return
    result = run["result"] or {}
    summary = result.get("summary") or {}
    for key, value in summary.items():
        if key != "notes":
            console.print(f"  {key}: {value}")
    for note in summary.get("notes") or []:
        console.print(f"  [yellow]note:[/yellow] {note}")
    _table("Areas · 지역", result.get("areas") or [], top, COLUMNS["areas"])
    _table("Inspection list · 긴급점검 대상", result.get("inspection") or [], top, COLUMNS["inspection"])
    _table("Shelters · 대피소 수요", result.get("shelters") or [], top, COLUMNS["shelters"])


#: Columns worth a terminal when a result has them (others: the first scalar columns).
COLUMNS = {
    "areas": ["code", "name_ko", "risk", "pga_g", "mmi", "buildings", "expected_extensive", "expected_complete",
              "displaced_people", "surcharge_ratio", "density"],
    "inspection": ["role", "name_ko", "area_code", "pga_g", "p_moderate_or_worse", "priority", "assumed"],
    "shelters": ["name_ko", "shelter_kind", "capacity", "demand_people", "over_capacity"],
}


def _table(title: str, rows: list[dict[str, Any]], top: int, preferred: list[str]) -> None:
    if not rows:
        return
    keys = [k for k in preferred if k in rows[0]]
    if len(keys) < 3:
        keys = [k for k, v in rows[0].items() if not isinstance(v, dict | list)][:8]
    if "pga_g" in keys and "priority" not in keys:
        rows = sorted(rows, key=lambda r: -(r.get("pga_g") or 0))
    table = Table(title=title)
    for key in keys:
        table.add_column(key)
    for row in rows[:top]:
        table.add_row(*(str(row.get(k)) for k in keys))
    console.print(table)


def list_runs(
    kind: Annotated[str | None, typer.Option(help="Only this kind")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    database_url: DatabaseUrl = None,
) -> None:
    """Stored simulation runs, newest first (시뮬레이션 목록)."""
    from haechi.simulation import runs
    from haechi.store import open_db

    engine = open_db(database_url or get_settings().database_url)
    with engine.connect() as conn:
        rows = runs.find(conn, kind, limit=limit)
    table = Table(title="Simulations · 시뮬레이션")
    for column in ("id", "kind", "status", "progress", "created_by", "created_at", "params"):
        table.add_column(column)
    for r in rows:
        table.add_row(str(r["id"]), r["kind"], r["status"], f"{r['progress']:.0%}", str(r["created_by"]),
                      str(r["created_at"]), json.dumps(r["params"], ensure_ascii=False))
    console.print(table)
