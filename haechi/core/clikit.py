"""What every ``haechi`` command shares: the console, the ``--database-url`` option, the
who is acting, and how an error is shown (in one place so they all agree)."""

from __future__ import annotations

import getpass
from typing import Annotated

import typer
from rich.console import Console

from haechi.core.errors import HaechiError

console = Console()
DatabaseUrl = Annotated[
    str | None, typer.Option("--database-url", envvar="HAECHI_DATABASE_URL", help="SQLAlchemy URL of the DB.")
]


def actor() -> str:
    """Who is acting, for audit trails: the operating-system user at the terminal."""
    return f"cli:{getpass.getuser()}"


def fail(exc: HaechiError) -> typer.Exit:
    """Print the error (naming its field, if any) and exit with status 2."""
    where = f" ({exc.field})" if exc.field else ""
    console.print(f"[red]error{where}:[/red] {exc.detail}")
    return typer.Exit(code=2)
