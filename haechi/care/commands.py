"""``haechi care``: purge old positions now (the server also does it on a schedule)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from haechi.core.settings import get_settings

care_app = typer.Typer(help="Care for the vulnerable: consent, positions, purge (돌봄 · 위치정보).",
                       no_args_is_help=True)
console = Console()


@care_app.command("purge")
def purge(
    database_url: Annotated[str | None, typer.Option("--database-url", envvar="HAECHI_DATABASE_URL")] = None,
    retention_h: Annotated[float | None, typer.Option(
        "--retention-h", min=0.0, help="Keep this many hours (default HAECHI_CARE_RETENTION_H, 24)")] = None,
) -> None:
    """Delete care positions and activity older than the retention period · 보존기간 지난 위치정보 파기."""
    from haechi.care import repository
    from haechi.core.clock import utcnow
    from haechi.store import open_db

    settings = get_settings()
    hours = settings.care_retention_h if retention_h is None else retention_h
    engine = open_db(database_url or settings.database_url)
    from datetime import timedelta

    with engine.begin() as conn:
        removed = repository.purge(conn, utcnow() - timedelta(hours=hours))
    engine.dispose()
    console.print(f"파기 완료 · purged (older than {hours:g} h): {removed['positions']} positions, "
                  f"{removed['activity']} activity reports, {removed['alert_positions']} alert positions cleared")
