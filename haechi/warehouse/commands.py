"""``haechi lake …`` and ``haechi mart …``: export to the Parquet lake, query it, refresh the marts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from haechi.core.settings import get_settings

app = typer.Typer(help="The Parquet lake of observations and events (데이터 레이크).", no_args_is_help=True)
mart_app = typer.Typer(help="Data marts over the lake (데이터 마트).", no_args_is_help=True)
console = Console()

DatabaseUrl = Annotated[
    str | None, typer.Option("--database-url", envvar="HAECHI_DATABASE_URL", help="SQLAlchemy URL of the DB.")
]
LakeDir = Annotated[Path | None, typer.Option("--lake", envvar="HAECHI_LAKE_DIR", help="Folder of the lake.")]


def lake_dir(given: Path | None) -> Path:
    return Path(given or get_settings().lake_dir)


def _engine(url: str | None):
    from haechi.store import open_db

    return open_db(url or get_settings().database_url)


@app.command("export")
def export(database_url: DatabaseUrl = None, lake: LakeDir = None) -> None:
    """Export new observations, warnings, alerts and disasters (내보내기: 새 행만)."""
    from haechi.warehouse import lake as lakes

    engine, folder = _engine(database_url), lake_dir(lake)
    todo = {name: lakes.pending(engine, name) for name in lakes.DATASETS}
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console) as progress:
        tasks = {name: progress.add_task(f"{name} 내보내기 export", total=n or 1) for name, n in todo.items()}
        results = lakes.export(engine, folder, progress=lambda name, n: progress.advance(tasks[name], n))
        for name, task in tasks.items():
            progress.update(task, completed=todo[name] or 1)
    table = Table("dataset 데이터셋", "rows 행", "files 파일", "note 비고")
    for r in results:
        # Writers still open on PostgreSQL: their rows wait for the next export (lake.py docstring).
        note = "postponed 연기: writers still open 쓰기 진행 중" if r.postponed else ""
        table.add_row(r.dataset, str(r.rows), str(r.files), note)
    console.print(table)
    console.print(f"lake 레이크: {folder.resolve()}")


@app.command("status")
def status(database_url: DatabaseUrl = None) -> None:
    """Each dataset's watermark and the rows waiting for the next export (내보내기 현황)."""
    from haechi.warehouse import lake as lakes

    engine = _engine(database_url)
    table = Table("dataset 데이터셋", "exported 내보낸 행", "files 파일", "pending 대기", "last export 최근")
    for mark in lakes.watermarks(engine):
        table.add_row(mark["dataset"], str(mark["rows_exported"]), str(mark["files_written"]),
                      str(lakes.pending(engine, mark["dataset"])), str(mark.get("updated_at") or "—"))
    console.print(table)


@app.command("query")
def query(sql: Annotated[str, typer.Argument(help="DuckDB SQL over the lake's views")], lake: LakeDir = None,
          limit: Annotated[int, typer.Option(help="Rows shown at most")] = 50) -> None:
    """Query the lake with DuckDB: views observations, warnings, alerts, disasters, dim_*, mart_* (질의)."""
    import duckdb

    from haechi.warehouse.marts import connect

    con = connect(lake_dir(lake))
    try:
        result = con.execute(sql)
        rows = result.fetchmany(limit) if result.description else []
    except duckdb.Error as exc:
        console.print(f"[red]error 오류:[/red] {exc}")
        raise typer.Exit(code=2) from None
    if not result.description:
        return
    table = Table(*(d[0] for d in result.description))
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)


@mart_app.command("refresh")
def refresh(lake: LakeDir = None, full: Annotated[bool, typer.Option(help="Recompute every day")] = False) -> None:
    """Bring the data marts up to date with the lake (changed days only) (마트 갱신)."""
    from haechi.warehouse.marts import refresh as run

    with console.status("마트 갱신 refreshing marts…"):
        result = run(lake_dir(lake), full=full)
    kind = "full 전체" if result.full else "incremental 증분"
    console.print(f"{kind}: {len(result.dates)} day(s) 일 recomputed")
    table = Table("mart 마트", "rows 행")
    for name, rows in result.rows.items():
        table.add_row(name, str(rows))
    console.print(table)


@mart_app.command("patterns")
def patterns(lake: LakeDir = None) -> None:
    """Patterns worth a look: degrading sensors, trigger intensities, warning calendars (패턴)."""
    from haechi.warehouse import patterns as mining
    from haechi.warehouse.marts import connect

    con = connect(lake_dir(lake))
    degrading = mining.degrading_sensors(con)
    table = Table("datastream", "days 일수", "tau", "p", "slope/day 기울기", "degrading 저하")
    for d in degrading:
        table.add_row(str(d.datastream_id), str(d.days), f"{d.tau:.2f}", f"{d.p_value:.3g}",
                      f"{d.slope_per_day:.2f}", "yes 예" if d.degrading else "no")
    console.print("[bold]센서 품질 추세 Sensor quality trends[/bold]")
    console.print(table)
    calendar = mining.warning_calendar(con)
    table = Table("hazard 위험", "month 월", "warnings 특보 수")
    for row in calendar["by_month"]:
        table.add_row(row["hazard"], str(row["month"]), str(row["warnings"]))
    console.print("[bold]특보 계절성 Warnings by month[/bold]")
    console.print(table)
