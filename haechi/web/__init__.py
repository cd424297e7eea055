"""The web pages: the situation room (operators) and the citizen portal, served by the API process
(``haechi.api.pages``).

Front-end libraries come from npm at set-up (node_modules/), never committed, served locally so
the pages work with no internet.

The pages name their scripts and styles by content (``/static/room.js?v=<hash>``): such a URL
always means those bytes, so browsers and caches may keep it a year, and a new release changes it.
"""

from __future__ import annotations

import hashlib
import re
from functools import cache
from pathlib import Path

HERE = Path(__file__).parent
STATIC = HERE / "static"
NODE_MODULES = [Path.cwd() / "node_modules", Path(__file__).resolve().parents[2] / "node_modules"]
LIBRARIES = {"leaflet": "leaflet/dist", "uplot": "uplot/dist", "axe-core": "axe-core"}
PAGES = {"/room": HERE / "room.html", "/portal": HERE / "portal.html"}
#: Hex digits of the content hash in an asset's URL: enough that two releases never collide.
FINGERPRINT_CHARS = 12
LOCAL_URL = re.compile(r'(?P<attr>\b(?:src|href)=")(?P<url>/(?:static|vendor)/[^"?#]+)"')


def asset_folders() -> dict[str, Path]:
    """URL prefix → folder: the pages' own assets, and each npm library that is installed."""
    folders = {"/static": STATIC}
    for name, sub in LIBRARIES.items():
        folder = next((base / sub for base in NODE_MODULES if (base / sub).is_dir()), None)
        if folder is not None:
            folders[f"/vendor/{name}"] = folder
    return folders


@cache
def fingerprint(path: Path) -> str:
    """The content hash that versions an asset's URL (read once per process: a release is a restart)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:FINGERPRINT_CHARS]


def fingerprinted(html: str, folders: dict[str, Path]) -> str:
    """The page with each local script and style named by its content: ``/static/room.js?v=<hash>``."""

    def versioned(match: re.Match[str]) -> str:
        url = match["url"]
        prefix = next((p for p in folders if url.startswith(p + "/")), None)
        file = folders[prefix] / url.removeprefix(prefix + "/") if prefix else None
        if file is None or not file.is_file():
            return match[0]  # a library not installed: left as written (the page says so itself)
        return f'{match["attr"]}{url}?v={fingerprint(file)}"'

    return LOCAL_URL.sub(versioned, html)
