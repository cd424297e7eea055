"""Running an import: pick the importer of a kind, record the run, report what became of each row."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import httpx
import orjson
import pyarrow as pa
from sqlalchemy import Engine

from haechi.core.errors import HaechiError, InvalidInput

from . import formats, runs, tabular, textfile
from .runs import Outcome, Progress, no_progress


def _observations_csv(layout: tabular.Layout):
    def run(engine: Engine, path: Path, outcome: Outcome, progress: Progress, **_) -> Outcome:
        return tabular.import_csv(engine, path, layout, outcome, progress)
    return run


def _han_river(engine: Engine, path: Path, outcome: Outcome, progress: Progress, **_) -> Outcome:
    encoding, skip = textfile.detect(path)
    layout = formats.han_river(tabular.csv_header(path, encoding, skip))
    return tabular.import_csv(engine, path, layout, outcome, progress)


def _hrfco(engine: Engine, path: Path, outcome: Outcome, progress: Progress, **_) -> Outcome:
    """HRFCO open-API JSON: ``{"content": [...]}`` (or a bare list) of water-level or rainfall records."""
    text, outcome.encoding = textfile.read_text(path)
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"{path.name}: not JSON: {exc}", field="file") from None
    records = data.get("content") if isinstance(data, dict) else data
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise InvalidInput(f"{path.name}: expected HRFCO's {{\"content\": [records]}}", field="content")
    layout = formats.HRFCO_RAIN if records and "rfobscd" in records[0] else formats.HRFCO_LEVEL
    header = list(dict.fromkeys(k for r in records for k in r))
    layout = tabular.check_columns(layout, header, path.name)
    used = {layout.time_column, layout.station_column, *(m.column for m in layout.measures)}
    outcome.ignored_columns = [c for c in header if c not in used]
    importer = tabular.BlockImporter(engine, layout, outcome)
    for start in range(0, len(records), 50_000):
        chunk = records[start:start + 50_000]
        columns = {c: pa.array([tabular.cell_text(r.get(c)) for r in chunk], pa.string()) for c in header}
        importer.add(pa.table(columns))
        progress(start + len(chunk), len(records))
    return outcome


def _registers():
    from . import registers
    return {kind: registers.importer(kind) for kind in registers.KINDS}


def _others():
    from . import mapped, sta
    return {"mapped": mapped.run, "sensorthings": sta.run}


#: kind → importer(engine, path_or_url, outcome, progress, **options)
IMPORTERS: dict[str, Callable] = {
    "kma-asos": _observations_csv(formats.KMA_ASOS),
    "airkorea": _observations_csv(formats.AIRKOREA),
    "seoul-air-daily": _observations_csv(formats.SEOUL_AIR_DAILY),
    "hrfco": _hrfco,
    "han-river": _han_river,
    "observations": _observations_csv(formats.OBSERVATIONS),
}


def kinds() -> dict[str, Callable]:
    return IMPORTERS | _registers() | _others()


def run_import(engine: Engine, kind: str, source: str, *, actor: str, progress: Progress = no_progress,
               label: str | None = None, **options) -> Outcome:
    """Import ``source`` (a file path, or a URL to fetch) as ``kind``; the run is recorded either way.

    ``label`` names the source in the record and dead letters when ``source`` is a temporary copy.
    """
    importers = kinds()
    if kind not in importers:
        raise InvalidInput(f"unknown import kind {kind!r}; known: {', '.join(sorted(importers))}", field="kind")
    outcome = Outcome(kind=kind, source=label or source)
    outcome.run_id = runs.start(engine, kind, outcome.source, actor)
    try:
        if kind == "sensorthings":
            importers[kind](engine, source, outcome, progress, **options)
        else:
            with _local(source, progress) as path:
                importers[kind](engine, path, outcome, progress, **options)
    except HaechiError as exc:
        runs.finish(engine, outcome.run_id, outcome, error=exc.detail)
        raise
    except Exception as exc:
        runs.finish(engine, outcome.run_id, outcome, error=f"{type(exc).__name__}: {exc}")
        raise
    runs.finish(engine, outcome.run_id, outcome)
    return outcome


@contextmanager
def _local(source: str, progress: Progress):
    """A local path for ``source``: itself, or a URL downloaded (streamed) to a temporary file."""
    if not source.startswith(("http://", "https://")):
        path = Path(source)
        if not path.is_file():
            raise InvalidInput(f"no such file: {source}", field="file")
        yield path
        return
    name = Path(httpx.URL(source).path).name or "download"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        try:
            with httpx.stream("GET", source, timeout=60, follow_redirects=True) as response:
                response.raise_for_status()
                total = int(response.headers.get("content-length") or 0) or None
                with open(path, "wb") as f:
                    for chunk in response.iter_bytes(1 << 20):
                        f.write(chunk)
                        progress(f.tell(), total)
        except httpx.HTTPError as exc:
            raise InvalidInput(f"could not fetch {source}: {exc}", field="url") from None
        yield path
