"""``haechi risk rank`` and ``haechi risk report`` (지역 위험도 평가)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table

from haechi.core.clikit import DatabaseUrl, console
from haechi.core.errors import HaechiError
from haechi.core.settings import get_settings

risk_app = typer.Typer(help="Regional risk index per district and dong (지역 위험도 평가).", no_args_is_help=True)
Level = Annotated[str, typer.Option(help="district or dong")]
MethodFile = Annotated[Path | None, typer.Option("--method", help="A method TOML (default: haechi/risk/method.toml)")]


def _assess(level: str, method: Path | None, database_url: str | None, sensitivity: bool) -> tuple[dict, Any]:
    from haechi import risk
    from haechi.store import open_db

    engine = open_db(database_url or get_settings().database_url)
    try:
        with engine.connect() as conn:
            return risk.assess(conn, level, method=method, with_sensitivity=sensitivity), engine
    except HaechiError as exc:
        console.print(f"[red]error:[/red] {exc.detail}")
        raise typer.Exit(code=2) from exc


@risk_app.command("rank")
def rank(
    level: Level = "dong",
    top: Annotated[int, typer.Option(min=1, help="Rows shown")] = 20,
    method: MethodFile = None,
    as_json: Annotated[bool, typer.Option("--json", help="The whole table as JSON")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Areas ranked by risk, with missing indicators and rank stability (위험도 순위)."""
    table, _ = _assess(level, method, database_url, sensitivity=True)
    if as_json:
        console.print_json(json.dumps(table, ensure_ascii=False))
        return
    out = Table(title=f"Risk index · 위험도 ({level}, {table['method']['name']})")
    for column in ("rank", "code", "name", "risk", "hazard", "exposure", "vulnerability", "lack of coping",
                   "90% rank band"):
        out.add_column(column)
    for r in table["areas"][:top]:
        out.add_row(str(r["rank"] or "–"), r["code"], r["name_ko"], str(r["risk"]), str(r["hazard"]),
                    str(r["exposure"]), str(r["vulnerability"]), str(r["lack_of_coping"]), str(r["rank_band_90"]))
    console.print(out)
    _notes(table)


def _notes(table: dict[str, Any]) -> None:
    for m in table["missing"]:
        console.print(f"[yellow]missing · 자료 없음:[/yellow] {m['indicator']} ({m['dimension']}): {m['reason']}")
    s = table.get("sensitivity") or {}
    if s.get("samples"):
        console.print(f"sensitivity · 민감도: median Spearman ρ {s['spearman_rho']['median']} "
                      f"(p05 {s['spearman_rho']['p05']}) over {s['samples']} weight samples "
                      f"(±{s['weight_spread']:.0%})")


@risk_app.command("report")
def report(
    out: Annotated[Path, typer.Option("--out", help="Directory for index.html and the PNG plots")],
    level: Level = "dong",
    top: Annotated[int, typer.Option(min=1, help="Areas in the plots")] = 20,
    method: MethodFile = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Write the risk report (HTML + PNG) for choosing pilot sites (위험도 평가 보고서)."""
    from haechi.risk import report as writer
    from haechi.store import areas

    with Progress(TextColumn("{task.description}"), BarColumn(), console=console) as bar:
        task = bar.add_task("assessing · 평가 중", total=2)
        table, engine = _assess(level, method, database_url, sensitivity=True)
        with engine.connect() as conn:
            geometries = {a["code"]: a["geometry"] for a in areas.list_areas(conn, level=level, geometry=True)}
        bar.update(task, advance=1, description="plotting · 그림 작성")
        files = writer.write(table, geometries, out, top)
        bar.update(task, advance=1, description="done · 완료")
    _notes(table)
    for f in files:
        console.print(f"wrote {f}")
