"""``haechi report district|city|event …``: HTML and PDF reports with maps and plots."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from haechi.core.clikit import DatabaseUrl, console
from haechi.core.errors import HaechiError
from haechi.core.settings import get_settings

app = typer.Typer(help="Safety reports in HTML and PDF (안전 보고서).", no_args_is_help=True)
OutDir = Annotated[Path, typer.Option("--out", help="Folder the HTML and PDF are written to.")]
Month = Annotated[str, typer.Option("--month", help="Local month, YYYY-MM (월)")]


def _run(build, stem: str, out: Path, database_url: str | None) -> None:
    from haechi.store import open_db

    engine = open_db(database_url or get_settings().database_url)
    try:
        with console.status("보고서 작성 중 building the report…"):
            html_path, pdf_path = build(engine).write(out, stem)
    except HaechiError as exc:
        console.print(f"[red]error 오류:[/red] {exc.detail}")
        raise typer.Exit(code=2) from None
    finally:
        engine.dispose()
    console.print(f"HTML: {html_path}\nPDF:  {pdf_path}")


@app.command("district")
def district(code: Annotated[str, typer.Argument(help="District code, e.g. 11590 (구 코드)")], month: Month,
             out: OutDir = Path("reports"), database_url: DatabaseUrl = None) -> None:
    """A district's monthly safety report (구 월간 안전 보고서)."""
    from .build import district_report

    _run(lambda e: district_report(e, code, month), f"district-{code}-{month}", out, database_url)


@app.command("city")
def city(month: Month, out: OutDir = Path("reports"), database_url: DatabaseUrl = None) -> None:
    """The city's monthly safety report (도시 월간 안전 보고서)."""
    from .build import city_report

    _run(lambda e: city_report(e, month), f"city-{month}", out, database_url)


@app.command("event")
def event(disaster_id: Annotated[int, typer.Argument(help="Disaster id (재난 번호)")],
          out: OutDir = Path("reports"), database_url: DatabaseUrl = None) -> None:
    """After-action report of a disaster event (재난 사후 검토 보고서)."""
    from .build import event_report

    _run(lambda e: event_report(e, disaster_id), f"event-{disaster_id}", out, database_url)
