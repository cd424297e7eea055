"""Registers: disaster occurrence history and the places of a city (facilities, shelters, CCTV …).

Registers are small (thousands of rows), so they are read row by row: each cell is checked by its
field's parser, and a row with a bad cell is refused naming that column. Places are upserted by
(kind, register number); a row identical to what is stored is a duplicate, a changed one updates it.
Disasters have no register number: the same kind, start, area and title is a duplicate.
"""

from __future__ import annotations

import csv
import io
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, select

from haechi.cities.targeting import settle_places
from haechi.core.clock import KST, utcnow
from haechi.core.errors import InvalidInput
from haechi.model.city import SAFETY_GRADES, DisasterKind
from haechi.store import places as place_store
from haechi.store.schema import admin_areas, disasters

from . import textfile
from .runs import Outcome, Progress, keep_rejected

VOCABULARY = Path(__file__).with_name("vocabulary.toml")
BATCH = 1000


@cache
def vocabulary() -> dict[str, Any]:
    with open(VOCABULARY, "rb") as f:
        return tomllib.load(f)


# ── cell parsers: text → value, or ValueError with the reason ───────────────────────────


def text(cell: str) -> str:
    return cell


def integer(cell: str) -> int:
    try:
        return int(cell.replace(",", ""))
    except ValueError:
        raise ValueError(f"not a whole number: {cell!r}") from None


def count(cell: str) -> int:
    value = integer(cell)
    if value < 0:
        raise ValueError(f"a count cannot be negative: {cell!r}")
    return value


def number(cell: str) -> float:
    try:
        return float(cell.replace(",", ""))
    except ValueError:
        raise ValueError(f"not a number: {cell!r}") from None


def bounded(low: float, high: float) -> Callable[[str], float]:
    def parse(cell: str) -> float:
        value = number(cell)
        if not low <= value <= high:
            raise ValueError(f"{value:g} is outside [{low:g}, {high:g}]")
        return value
    return parse


def choice(table: str, allowed: set[str] = frozenset()) -> Callable[[str], str]:
    """A term of ``vocabulary.toml``'s ``table``, or one of Haechi's own codes."""
    def parse(cell: str) -> str:
        words = vocabulary()[table]
        if cell in words:
            return words[cell]
        if cell in set(words.values()) | set(allowed):
            return cell
        raise ValueError(f"unknown value {cell!r}; expected one of {', '.join(words)}")
    return parse


def kst_moment(cell: str) -> datetime:
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d", "%Y%m%d"):
        try:
            return datetime.strptime(cell, fmt).replace(tzinfo=KST)
        except ValueError:
            continue
    raise ValueError(f"not a date (YYYY-MM-DD [HH:MM]): {cell!r}")


def year(cell: str) -> int:
    value = integer(cell)
    if not vocabulary()["bounds"]["min_completion_year"] <= value <= utcnow().year:
        raise ValueError(f"implausible year {value}")
    return value


def grade(cell: str) -> str:
    if cell.upper() not in SAFETY_GRADES:
        raise ValueError(f"safety grade must be one of {', '.join(SAFETY_GRADES)}: {cell!r}")
    return cell.upper()


def longitude(cell: str) -> float:
    b = vocabulary()["bounds"]
    return bounded(b["min_lon"], b["max_lon"])(cell)


def latitude(cell: str) -> float:
    b = vocabulary()["bounds"]
    return bounded(b["min_lat"], b["max_lat"])(cell)


@dataclass(frozen=True)
class Field:
    column: str  # as the register prints it
    key: str  # Haechi's field
    parse: Callable[[str], Any]
    required: bool = False


# ── layouts ──────────────────────────────────────────────────────────────────────────────

PLACE_COMMON = (
    Field("관리번호", "ref", text, True), Field("명칭", "name_ko", text, True), Field("주소", "address", text),
    Field("지역코드", "area_code", text), Field("경도", "lon", longitude), Field("위도", "lat", latitude),
)

PLACE_LAYOUTS: dict[str, tuple[str, tuple[Field, ...]]] = {
    "facilities": ("facility", (
        Field("시설종류", "facility_type", choice("facility_types"), True), Field("구조형식", "structure_type", text),
        Field("준공년도", "completion_year", year), Field("안전등급", "safety_grade", grade),
        Field("층수", "floors", count), Field("연장(m)", "length_m", bounded(0, 100_000)))),
    "shelters": ("shelter", (
        Field("시설구분", "shelter_kind", choice("shelter_kinds"), True), Field("수용인원", "capacity", count),
        Field("면적(㎡)", "floor_area_m2", bounded(0, 10_000_000)))),
    "fire-stations": ("fire_station", (Field("유형", "station_type", text),)),
    "hospitals": ("hospital", (
        Field("응급의료기관구분", "emergency_level", text), Field("응급실병상수", "er_beds", count))),
    "cctv": ("cctv", (
        Field("설치목적", "purpose", text), Field("촬영방향(도)", "direction_deg", bounded(0, 360)),
        Field("화각(도)", "fov_deg", bounded(0, 360)), Field("촬영거리(m)", "range_m", bounded(0, 5_000)))),
    "school-zones": ("school_zone", (
        Field("대상시설명", "school_name", text), Field("반경(m)", "radius_m", bounded(0, 2_000)))),
}

DISASTER_FIELDS = (
    Field("발생일시", "started_at", kst_moment, True), Field("종료일시", "ended_at", kst_moment),
    Field("지역코드", "area_code", text), Field("장소", "place", text),
    Field("재난종류", "kind", choice("disaster_kinds", {k.value for k in DisasterKind}), True),
    Field("구분", "category", choice("disaster_categories"), True), Field("재난명", "title", text),
    Field("사망", "deaths", count), Field("부상", "injuries", count), Field("실종", "missing", count),
    Field("이재민", "evacuated", count), Field("피해액(천원)", "damage_thousand_krw", count),
    Field("내용", "description", text), Field("경도", "lon", longitude), Field("위도", "lat", latitude),
)

KINDS = ("disasters", *PLACE_LAYOUTS)


def importer(kind: str):
    def run(engine: Engine, path: Path, outcome: Outcome, progress: Progress, **_) -> Outcome:
        rows = read_rows(path, outcome)
        if kind == "disasters":
            return import_rows(engine, rows, DISASTER_FIELDS, kind, outcome, progress, _store_disasters,
                           _check_category)
        place_kind, fields = PLACE_LAYOUTS[kind]
        return import_rows(engine, rows, PLACE_COMMON + fields, kind, outcome, progress,
                       lambda conn, good: store_places(conn, place_kind, fields, good, outcome.source))
    return run


def read_rows(path: Path, outcome: Outcome) -> list[dict[str, str]]:
    content, outcome.encoding = textfile.read_text(path)
    reader = csv.DictReader(io.StringIO(content))
    reader.fieldnames = [c.strip() for c in reader.fieldnames or []]
    return [{k: v for k, v in row.items() if k is not None} for row in reader]  # cells past the header: dropped


def import_rows(engine: Engine, rows: list[dict[str, str]], fields: tuple[Field, ...], kind: str, outcome: Outcome,
            progress: Progress, store: Callable[[Connection, list[dict[str, Any]]], tuple[int, int]],
            check: Callable[[dict[str, Any]], None] = lambda row: None) -> Outcome:
    header = list(rows[0]) if rows else []
    absent = [f.column for f in fields if f.required and f.column not in header]
    if absent:
        raise InvalidInput(f"{outcome.source}: not a {kind} register: missing {', '.join(absent)}; expected columns "
                           f"{', '.join(f.column for f in fields)}", field="header")
    known = {f.column for f in fields}
    outcome.ignored_columns = [c for c in header if c not in known]
    for start in range(0, len(rows), BATCH):
        good, letters = [], []
        for number_, raw in enumerate(rows[start:start + BATCH], start + 1):
            try:
                row = _parse_row(raw, fields)
                check(row)
                good.append(row | {"_row": number_})
            except _BadCell as exc:
                outcome.reject(number_, exc.field, exc.reason)
                letters.append((f"row {number_}, {exc.field}: {exc.reason}", {"row": number_, **raw}))
        with engine.begin() as conn:
            _check_areas(conn, good, letters, outcome)
            accepted, duplicates = store(conn, [g for g in good if g is not None])
            keep_rejected(conn, kind, letters)
        outcome.rows_read += min(BATCH, len(rows) - start)
        outcome.rows_rejected += len(letters)
        outcome.rows_accepted += accepted
        outcome.rows_duplicate += duplicates
        progress(outcome.rows_read, len(rows))
    return outcome


class _BadCell(Exception):
    def __init__(self, field: str, reason: str) -> None:
        self.field, self.reason = field, reason


def _parse_row(raw: dict[str, str], fields: tuple[Field, ...]) -> dict[str, Any]:
    row: dict[str, Any] = {"_raw": raw}
    for f in fields:
        cell = (raw.get(f.column) or "").strip()
        if not cell:
            if f.required:
                raise _BadCell(f.column, "missing")
            row[f.key] = None
            continue
        try:
            row[f.key] = f.parse(cell)
        except ValueError as exc:
            raise _BadCell(f.column, str(exc)) from None
    return row


def _check_areas(conn: Connection, good: list, letters: list, outcome: Outcome) -> None:
    """Area codes must name an area of the DB (load the city pack first)."""
    codes = {g["area_code"] for g in good if g.get("area_code")}
    known = (set(conn.execute(select(admin_areas.c.code).where(admin_areas.c.code.in_(codes))).scalars())
             if codes else set())
    for i, g in enumerate(good):
        if g.get("area_code") and g["area_code"] not in known:
            number_ = g["_row"]
            reason = f"unknown area code {g['area_code']!r} (load the city pack first)"
            outcome.reject(number_, "지역코드", reason)
            letters.append((f"row {number_}, 지역코드: {reason}", {"row": number_, **g["_raw"]}))
            good[i] = None


def _store_disasters(conn: Connection, rows: list[dict[str, Any]]) -> tuple[int, int]:
    accepted = duplicates = 0
    for r in rows:
        kind = DisasterKind(r["kind"])
        title = r["title"] or " ".join(p for p in (r["place"], r["_raw"].get("재난종류")) if p)
        row = {
            "category": r["category"], "kind": kind.value, "title": title, "started_at": r["started_at"],
            "ended_at": r["ended_at"], "area_code": r["area_code"], "lon": r["lon"], "lat": r["lat"],
            "deaths": r["deaths"] or 0, "injuries": r["injuries"] or 0, "missing": r["missing"] or 0,
            "evacuated": r["evacuated"] or 0,
            "damage_krw": r["damage_thousand_krw"] * 1000 if r["damage_thousand_krw"] is not None else None,
            "description": r["description"], "source": "import:disasters",
        }
        if _disaster_exists(conn, row):
            duplicates += 1
            continue
        conn.execute(disasters.insert().values(**row))
        accepted += 1
    return accepted, duplicates


def _check_category(row: dict[str, Any]) -> None:
    kind = DisasterKind(row["kind"])
    if kind.category != row["category"]:
        raise _BadCell("구분", f"{kind.value} is a {kind.category.value} disaster, not {row['category']}")


def _disaster_exists(conn: Connection, row: dict[str, Any]) -> bool:
    d = disasters.c
    area = d.area_code.is_(None) if row["area_code"] is None else d.area_code == row["area_code"]
    window = (row["started_at"] - timedelta(seconds=1), row["started_at"] + timedelta(seconds=1))
    query = select(d.id).where(d.kind == row["kind"], d.title == row["title"], area, d.started_at.between(*window))
    return conn.execute(query).first() is not None


def store_places(conn: Connection, kind: str, fields: tuple[Field, ...], rows: list[dict[str, Any]],
                  source: str) -> tuple[int, int]:
    detail = place_store.DETAILS.get(kind)
    detail_keys = {c.name for c in detail.c} if detail is not None else set()
    stored = {p["ref"]: p for p in place_store.list_places(conn, kind)} if rows else {}
    new, duplicates = [], 0
    for r in rows:
        place = {"kind": kind, "ref": r["ref"], "name_ko": r["name_ko"], "address": r["address"],
                 "area_code": r["area_code"], "lon": r["lon"], "lat": r["lat"], "source": f"import:{source}"}
        extra = {f.key: r[f.key] for f in fields}
        place |= {k: v for k, v in extra.items() if k in detail_keys}
        attrs = {k: v for k, v in extra.items() if k not in detail_keys and v is not None}
        place["attrs"] = attrs or None
        if _same(stored.get(r["ref"]), place):
            duplicates += 1
        else:
            new.append(place)
    place_store.save_places(conn, new)
    # As a pack's or the API's: an area from the point, and a monitoring place its placed Datastreams.
    settle_places(conn, place_store.ids_of(conn, [(p["kind"], p["ref"]) for p in new]).values())
    return len(new), duplicates


def _same(stored: dict[str, Any] | None, place: dict[str, Any]) -> bool:
    if stored is None:
        return False
    return all(stored.get(k) == v for k, v in place.items() if k not in ("source", "attrs")) and \
        (stored.get("attrs") or None) == place["attrs"]
