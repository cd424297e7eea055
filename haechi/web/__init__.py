"""The web pages: the situation room (operators) and the citizen portal, served by the API process.

Front-end libraries come from npm at set-up (node_modules/), never committed, served locally so
the pages work with no internet.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

HERE = Path(__file__).parent
NODE_MODULES = [Path.cwd() / "node_modules", Path(__file__).resolve().parents[2] / "node_modules"]
LIBRARIES = {"leaflet": "leaflet/dist", "uplot": "uplot/dist", "axe-core": "axe-core"}


def install_pages(app: FastAPI) -> None:
    """Mount the pages at /room and /portal, their assets, and the npm libraries under /vendor."""
    for name, sub in LIBRARIES.items():
        folder = next((base / sub for base in NODE_MODULES if (base / sub).is_dir()), None)
        if folder is not None:
            app.mount(f"/vendor/{name}", StaticFiles(directory=folder), name=f"vendor-{name}")
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.add_api_route("/room", lambda: FileResponse(HERE / "room.html"), include_in_schema=False)
    app.add_api_route("/portal", lambda: FileResponse(HERE / "portal.html"), include_in_schema=False)
    app.add_api_route("/", lambda: RedirectResponse("/room"), include_in_schema=False)
