"""Open data: the catalogue (DCAT), each dataset as an Arrow table of allowlisted fields, and its
renderings as CSV, GeoJSON, Parquet and JSON; a token bucket per client.

Personal data cannot leak through here by construction: every dataset selects exactly the fields
its catalogue entry lists (opendata.toml), and a field whose name carries a denylisted word is
refused even if someone lists it.
"""

from __future__ import annotations

import csv
import io
import json
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Engine, select

from haechi.core.buckets import TokenBuckets, retry_after
from haechi.core.errors import InvalidInput, NotFound
from haechi.store.schema import admin_areas, alerts, area_statistics, disasters, places, warnings

from .marts import connect

HERE = Path(__file__).parent
FORMATS = {"csv": "text/csv; charset=utf-8", "geojson": "application/geo+json", "json": "application/json",
           "parquet": "application/vnd.apache.parquet"}
# EU Publications Office frequency authority table, as DCAT-AP uses it.
FREQUENCIES = {"continuous": "CONT", "hourly": "HOURLY", "daily": "DAILY", "annual": "ANNUAL",
               "irregular": "IRREG"}
FREQUENCY_BASE = "http://publications.europa.eu/resource/authority/frequency/"


@cache
def catalogue() -> dict[str, Any]:
    with open(HERE / "opendata.toml", "rb") as f:
        spec = tomllib.load(f)
    for name, dataset in spec["datasets"].items():
        refuse_personal(dataset["fields"], spec["denylist"], name)
    return spec


def refuse_personal(fields: list[str], denylist: list[str], dataset: str) -> None:
    """Raise if any field name is, or contains as a word, a denylisted name."""
    denied = set(denylist)
    for name in fields:
        if name in denied or denied & set(name.lower().split("_")):
            raise ValueError(f"open dataset {dataset!r} lists {name!r}, a personal field: never published")


def spec_of(dataset: str) -> dict[str, Any]:
    known = catalogue()["datasets"]
    if dataset not in known:
        raise NotFound(f"no open dataset {dataset!r}; known: {', '.join(known)}")
    return known[dataset]


# ── DCAT metadata ──────────────────────────────────────────────────────────────────────

CONTEXT = {"dcat": "http://www.w3.org/ns/dcat#", "dct": "http://purl.org/dc/terms/",
           "foaf": "http://xmlns.com/foaf/0.1/", "csvw": "http://www.w3.org/ns/csvw#"}


def dcat_dataset(name: str, base: str) -> dict[str, Any]:
    spec, cat = spec_of(name), catalogue()
    return {
        "@id": f"{base}/datasets/{name}", "@type": "dcat:Dataset", "dct:identifier": name,
        "dct:title": [{"@value": spec["title_ko"], "@language": "ko"}, {"@value": spec["title_en"], "@language": "en"}],
        "dct:description": [{"@value": spec["description_ko"], "@language": "ko"},
                            {"@value": spec["description_en"], "@language": "en"}],
        "dct:license": {"@id": cat["licence"], "dct:title": cat["licence_name"]},
        "dct:publisher": {"@type": "foaf:Organization", "foaf:name": cat["publisher"]},
        "dct:accrualPeriodicity": {"@id": FREQUENCY_BASE + FREQUENCIES[spec["frequency"]]},
        "dcat:keyword": spec.get("keywords", []),
        "csvw:tableSchema": {"csvw:column": [{"csvw:name": f} for f in spec["fields"]]},
        "dcat:distribution": [
            {"@type": "dcat:Distribution", "dct:format": fmt, "dcat:mediaType": media.split(";")[0],
             "dcat:downloadURL": f"{base}/datasets/{name}.{fmt}", "dct:license": {"@id": cat["licence"]}}
            for fmt, media in FORMATS.items() if fmt != "geojson" or _has_geometry(spec)],
    }


def dcat_catalogue(base: str) -> dict[str, Any]:
    cat = catalogue()
    return {"@context": CONTEXT, "@id": base, "@type": "dcat:Catalog",
            "dct:title": [{"@value": "해치 공공데이터", "@language": "ko"},
                          {"@value": "Haechi open data", "@language": "en"}],
            "dct:publisher": {"@type": "foaf:Organization", "foaf:name": cat["publisher"]},
            "dct:license": {"@id": cat["licence"], "dct:title": cat["licence_name"]},
            "dcat:dataset": [dcat_dataset(name, base) for name in cat["datasets"]]}


def _has_geometry(spec: dict[str, Any]) -> bool:
    return "geometry" in spec or {"lon", "lat"} <= set(spec["fields"])


# ── Rows ───────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Window:
    """Optional local-date range of a by-date mart (both inclusive)."""

    start: date | None = None
    end: date | None = None


def table_of(engine: Engine, lake: Path, name: str, window: Window = Window()) -> pa.Table:
    """The open dataset ``name`` with exactly its allowlisted fields, in their listed order."""
    spec = spec_of(name)
    fields = spec["fields"]
    source = spec["source"]
    if source.startswith(("mart:", "lake:")):
        table = _from_lake(lake, source, fields, window)
    else:
        table = pa.Table.from_pylist(_from_db(engine, source, spec, fields))
        if table.num_columns == 0:
            table = pa.table({f: pa.array([], pa.string()) for f in fields})
    refuse_personal(table.column_names, catalogue()["denylist"], name)
    return table.select(fields)


def _from_db(engine: Engine, source: str, spec: dict[str, Any], fields: list[str]) -> list[dict[str, Any]]:
    tables = {"admin_areas": admin_areas, "area_statistics": area_statistics, "places": places,
              "warnings": warnings, "alerts": alerts, "disasters": disasters}
    table = tables[source]
    query = select(*(table.c[f] for f in fields))
    if source == "places":
        query = query.where(places.c.kind.in_(spec["kinds"]))
    elif source == "warnings":
        query = query.where(warnings.c.exercise.is_(False))
    elif source == "alerts":
        query = query.where(alerts.c.status == "Actual")
    query = query.order_by(*(c for c in table.primary_key.columns))
    with engine.connect() as conn:
        return [{k: _plain(v) for k, v in r._mapping.items()} for r in conn.execute(query)]


def _plain(value: Any) -> Any:
    if isinstance(value, dict):  # GeoJSON geometry: kept as text in tables, parsed for GeoJSON
        return json.dumps(value, ensure_ascii=False)
    return value


def _from_lake(lake: Path, source: str, fields: list[str], window: Window) -> pa.Table:
    kind, name = source.split(":", 1)
    view = name if kind == "lake" else f"mart_{name}"
    con = connect(lake)
    try:
        exists = con.execute("SELECT count(*) FROM duckdb_views() WHERE view_name = ?", [view]).fetchall()[0][0]
        if not exists:
            return pa.table({f: pa.array([], pa.string()) for f in fields})
        columns = ", ".join(f'"{f}"' for f in fields)
        where, params = [], []
        if "date" in fields and window.start:
            where.append("date >= ?")
            params.append(window.start)
        if "date" in fields and window.end:
            where.append("date <= ?")
            params.append(window.end)
        sql = f"SELECT {columns} FROM {view}" + (" WHERE " + " AND ".join(where) if where else "")
        order = [f for f in ("date", "hour", "datastream_id", "district_code", "month") if f in fields]
        if order:
            sql += " ORDER BY " + ", ".join(order)
        return con.sql(sql, params=params).to_arrow_table()
    finally:
        con.close()


# ── Renderings ─────────────────────────────────────────────────────────────────────────


def _text(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return value


def render(table: pa.Table, fmt: str, spec: dict[str, Any]) -> bytes:
    if fmt == "parquet":
        sink = io.BytesIO()
        pq.write_table(table, sink, compression="zstd")
        return sink.getvalue()
    rows = table.to_pylist()
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(table.column_names)
        writer.writerows([[_text(r[c]) for c in table.column_names] for r in rows])
        return ("\ufeff" + out.getvalue()).encode("utf-8")  # BOM: Excel in Korea reads UTF-8 right
    if fmt == "json":
        return json.dumps([{k: _text(v) for k, v in r.items()} for r in rows], ensure_ascii=False).encode()
    if fmt == "geojson":
        if not _has_geometry(spec):
            raise InvalidInput("this dataset has no geometry; use csv, json or parquet", field="path.format")
        return json.dumps(_feature_collection(rows, spec), ensure_ascii=False).encode()
    raise InvalidInput(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}", field="path.format")


def _feature_collection(rows: list[dict[str, Any]], spec: dict[str, Any]) -> dict[str, Any]:
    features = []
    geometry_field = spec.get("geometry")
    for r in rows:
        if geometry_field:
            geometry = json.loads(r[geometry_field]) if r.get(geometry_field) else None
        elif r.get("lon") is not None and r.get("lat") is not None:
            geometry = {"type": "Point", "coordinates": [r["lon"], r["lat"]]}
        else:
            geometry = None
        properties = {k: _text(v) for k, v in r.items() if k != geometry_field}
        features.append({"type": "Feature", "geometry": geometry, "properties": properties})
    return {"type": "FeatureCollection", "features": features}


# ── Rate limit ─────────────────────────────────────────────────────────────────────────


class TokenBucket:
    """Per-client limits on the open-data downloads: ``burst`` requests at once, refilled at ``rate``
    per second; the shared buckets, so a client is forgotten once its bucket has refilled."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self._buckets = TokenBuckets(burst, rate * 60.0)

    def take(self, client: str) -> float:
        """0 when the request may go ahead, else the seconds until it may (nothing taken)."""
        return self._buckets.take(client, self.clock())

    def __len__(self) -> int:
        return len(self._buckets)

    @staticmethod
    def retry_after(wait: float) -> str:
        return str(retry_after(wait))
