"""Serving the web pages (``haechi.web``): the room, the portal, their assets and the npm libraries.

Everything here is the same for everyone and changes only with a release, so it is answered from
memory (``public_cache``): pages for a minute, fingerprinted assets for a year (``immutable``).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import Scope

from haechi.web import PAGES, asset_folders, fingerprint, fingerprinted

from .public_cache import ASSET, IMMUTABLE, PAGE, share, share_scope


class PublicFiles(StaticFiles):
    """Static files, shared: a year when asked for by their fingerprint (``?v=``), else a minute."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code == 200:
            asked = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("v", [None])[0]
            file, _ = self.lookup_path(path)
            share_scope(scope, IMMUTABLE if asked and file and asked == fingerprint(Path(file)) else ASSET)
        return response


def install_pages(app: FastAPI) -> None:
    """Mount the pages at /room and /portal, their assets, and the npm libraries under /vendor."""
    folders = asset_folders()
    for prefix, folder in folders.items():
        app.mount(prefix, PublicFiles(directory=folder), name=prefix.strip("/").replace("/", "-"))
    for route, file in PAGES.items():
        html = fingerprinted(file.read_text(encoding="utf-8"), folders)
        app.add_api_route(route, _page(html.encode()), include_in_schema=False, response_class=HTMLResponse)
    app.add_api_route("/", lambda: RedirectResponse("/room"), include_in_schema=False)


def _page(body: bytes):
    async def page(request: Request) -> HTMLResponse:
        share(request, PAGE)
        return HTMLResponse(body)

    return page
