"""Any CSV or GeoJSON with a mapping file (TOML) saying which column holds which field, in which unit.

Observations (CSV or GeoJSON feature properties)::

    target = "observations"
    place_kind = "river_gauge"          # each station is a place of this kind
    time_format = "%Y-%m-%d %H:%M"      # strptime; local time in Korea (UTC+9) unless utc_offset_hours
    [columns]
    station = "관측소코드"
    station_name = "관측소명"           # optional
    time = "관측시각"
    [[measures]]
    column = "수위(cm)"
    property = "water_level"            # a code of ingest/properties.csv
    unit = "cm"                         # the file's unit (UCUM); converted to the catalogue's

Places (CSV with lon/lat columns, or GeoJSON whose geometry gives the position)::

    target = "places"
    kind = "shelter"                    # facility, shelter, hospital, cctv, school_zone, …
    [columns]                           # Haechi field = the file's column
    ref = "id"
    name_ko = "name"
    shelter_kind = "type"
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
from shapely.geometry import shape
from sqlalchemy import Engine, Float, Integer

from haechi.core.errors import InvalidInput
from haechi.model.catalogue import lookup
from haechi.model.city import PlaceKind
from haechi.store import places as place_store
from haechi.store.schema import places

from . import registers, tabular, textfile
from .registers import Field
from .runs import Outcome, Progress
from .tabular import Layout, Measure

KST_HOURS = 9


def run(engine: Engine, path: Path, outcome: Outcome, progress: Progress, *, mapping: str | Path | None = None,
        **_) -> Outcome:
    if mapping is None:
        raise InvalidInput("a mapped import needs a mapping file (--mapping FILE.toml)", field="mapping")
    spec = read_mapping(Path(mapping))
    geojson = path.suffix.lower() in (".geojson", ".json")
    if spec["target"] == "observations":
        layout = observation_layout(spec, path.name)
        if not geojson:
            return tabular.import_csv(engine, path, layout, outcome, progress)
        rows = [props for props, _ in _features(path, outcome)]
        return _observation_rows(engine, rows, layout, outcome, progress)
    fields = place_fields(spec)
    kind = spec["kind"]
    rows = _place_rows(path, outcome) if geojson else registers.read_rows(path, outcome)
    if geojson:  # the geometry gives the position unless the mapping names columns for it
        fields += tuple(Field(key, key, parse)
                        for key, parse in (("lon", registers.longitude), ("lat", registers.latitude))
                        if key not in spec["columns"])
    return registers.import_rows(engine, rows, fields, f"mapped:{kind}", outcome, progress,
                             lambda conn, good: _store(conn, kind, spec, good, outcome.source))


def read_mapping(path: Path) -> dict[str, Any]:
    try:
        spec = tomllib.loads(textfile.read_text(path)[0])
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{path.name}: not TOML: {exc}", field="mapping") from None
    if spec.get("target") not in ("observations", "places"):
        raise InvalidInput(f"{path.name}: target must be \"observations\" or \"places\"", field="target")
    if not isinstance(spec.get("columns"), dict):
        raise InvalidInput(f"{path.name}: a [columns] table is required", field="columns")
    return spec


def observation_layout(spec: dict[str, Any], name: str) -> Layout:
    columns = spec["columns"]
    for needed in ("station", "time"):
        if needed not in columns:
            raise InvalidInput(f"mapping: columns.{needed} is required for observations", field=f"columns.{needed}")
    measures = []
    for m in spec.get("measures") or []:
        try:
            lookup(m["property"])
            measures.append(Measure(m["column"], m["property"], m.get("unit") or lookup(m["property"]).unit_symbol))
        except KeyError as exc:
            raise InvalidInput(f"mapping: each [[measures]] needs {exc.args[0]}", field="measures") from None
    if not measures:
        raise InvalidInput("mapping: at least one [[measures]] is required", field="measures")
    offset = float(spec.get("utc_offset_hours", KST_HOURS))
    fmt = spec.get("time_format", "%Y-%m-%d %H:%M")

    def parse_time(text: pa.Array) -> pa.Array:
        import pyarrow.compute as pc
        moments = pc.strptime(text, format=fmt, unit="s", error_is_null=True).cast(pa.int64())
        return pc.subtract(moments, int(offset * 3600))
    place_kind = PlaceKind(spec.get("place_kind", "weather_station")).value
    return Layout(kind="mapped", place_kind=place_kind, station_column=columns["station"],
                  name_column=columns.get("station_name"), time_column=columns["time"], parse_time=parse_time,
                  measures=tuple(measures), source=f"mapped import of {name}")


def place_fields(spec: dict[str, Any]) -> tuple[Field, ...]:
    kind = spec.get("kind")
    if kind not in {k.value for k in PlaceKind}:
        raise InvalidInput(f"mapping: kind must be one of {', '.join(k.value for k in PlaceKind)}", field="kind")
    detail = place_store.DETAILS.get(kind)
    typed = {c.name: c.type for c in (*places.c, *(detail.c if detail is not None else ()))}
    fields = []
    for key, column in spec["columns"].items():
        parse = {"lon": registers.longitude, "lat": registers.latitude}.get(key)
        if parse is None:
            kind_of = typed.get(key)
            parse = registers.number if isinstance(kind_of, Float) else (
                registers.integer if isinstance(kind_of, Integer) else registers.text)
        fields.append(Field(column, key, parse, key in ("ref", "name_ko")))
    if not {"ref", "name_ko"} <= spec["columns"].keys():
        raise InvalidInput("mapping: columns.ref and columns.name_ko are required for places", field="columns")
    return tuple(fields)


def _store(conn, kind: str, spec: dict[str, Any], rows: list[dict[str, Any]], source: str) -> tuple[int, int]:
    common = {"ref", "name_ko", "address", "area_code", "lon", "lat", "name_en"}
    extra = tuple(Field(c, k, registers.text) for k, c in spec["columns"].items() if k not in common)
    for r in rows:
        for key in common:
            r.setdefault(key, None)
    return registers.store_places(conn, kind, extra, rows, source)


def _features(path: Path, outcome: Outcome):
    text, outcome.encoding = textfile.read_text(path)
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"{path.name}: not JSON: {exc}", field="file") from None
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection":
        raise InvalidInput(f"{path.name}: expected a GeoJSON FeatureCollection", field="type")
    for feature in data.get("features") or []:
        yield (feature.get("properties") or {}), feature.get("geometry")


def _place_rows(path: Path, outcome: Outcome) -> list[dict[str, str]]:
    """Feature properties as text cells, with the geometry's point (or centroid) as lon/lat."""
    rows = []
    for props, geometry in _features(path, outcome):
        row = {k: "" if v is None else str(v) for k, v in props.items()}
        if geometry:
            try:
                point = shape(geometry).representative_point() if geometry["type"] != "Point" else shape(geometry)
                row.setdefault("lon", f"{point.x}")
                row.setdefault("lat", f"{point.y}")
            except (KeyError, ValueError, TypeError, AttributeError):
                row["_geometry_error"] = "unreadable geometry"
        rows.append(row)
    return rows


def _observation_rows(engine: Engine, rows: list[dict[str, Any]], layout: Layout, outcome: Outcome,
                      progress: Progress) -> Outcome:
    header = list(dict.fromkeys(k for r in rows for k in r))
    layout = tabular.check_columns(layout, header, outcome.source)
    importer = tabular.BlockImporter(engine, layout, outcome)
    for start in range(0, len(rows), 50_000):
        chunk = rows[start:start + 50_000]
        importer.add(pa.table({c: pa.array([tabular.cell_text(r.get(c)) for r in chunk], pa.string()) for c in header}))
        progress(start + len(chunk), len(rows))
    return outcome
