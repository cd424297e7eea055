"""``haechi import KIND FILE|URL``: stream a file into the integrated DB with a progress bar."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from haechi.core.errors import HaechiError
from haechi.core.settings import get_settings

KINDS_HELP = ("kma-asos, airkorea, seoul-air-daily, hrfco, han-river, observations, disasters, facilities, shelters, "
              "fire-stations, hospitals, cctv, school-zones, sensorthings (a service root URL), "
              "mapped (needs --mapping)")

import_app = typer.Typer(help="Import data from existing systems · 기존 시스템 자료 가져오기")
console = Console()


@import_app.callback(invoke_without_command=True)
def import_file(
    kind: Annotated[str, typer.Argument(help=f"What the file holds: {KINDS_HELP}")],
    source: Annotated[str, typer.Argument(help="A file path, or an http(s) URL to fetch")],
    mapping: Annotated[Path | None, typer.Option(help="Mapping file (TOML) for kind 'mapped'")] = None,
) -> None:
    """Import KIND from FILE or URL: every row validated; rejected rows kept with their reason.
    · 자료를 가져옵니다: 모든 행을 검증하고, 거부된 행은 사유와 함께 보관합니다."""
    from haechi.imports import run_import
    from haechi.store import open_db

    engine = open_db(get_settings().database_url)
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task(f"{kind} · 가져오는 중", total=None)
            outcome = run_import(engine, kind, source, actor=f"cli:{getpass.getuser()}", mapping=mapping,
                                 progress=lambda done, total: bar.update(task, completed=done, total=total))
    except HaechiError as exc:
        console.print(f"[red]refused · 거부됨:[/red] {exc.detail}")
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    console.print(_summary(outcome))
    for r in outcome.rejections[:10]:
        console.print(f"  row {r['row']}: {r['field']}: {r['reason']}")
    if outcome.rows_rejected > 10:
        console.print(f"  … all {outcome.rows_rejected} kept: haechi deadletter list --source import:{kind}")


def _summary(outcome) -> Table:
    table = Table(title=f"import #{outcome.run_id} · {outcome.kind} · {outcome.encoding or ''}")
    table.add_column("what · 항목")
    table.add_column("count · 건수", justify="right")
    for label, value in (("rows read · 읽은 행", outcome.rows_read), ("accepted · 반영", outcome.rows_accepted),
                         ("rejected · 거부", outcome.rows_rejected), ("duplicates skipped · 중복 건너뜀",
                                                                     outcome.rows_duplicate),
                         ("observations stored · 저장된 관측값", outcome.observations_stored)):
        table.add_row(label, f"{value:,}")
    if outcome.ignored_columns:
        table.caption = "ignored columns · 사용하지 않은 열: " + ", ".join(outcome.ignored_columns)
    return table
