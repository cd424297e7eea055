"""The risk report for choosing pilot sites: PNG plots and one HTML page (위험도 평가 보고서)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never a window

import matplotlib.pyplot as plt
from matplotlib.collections import PatchCollection
from matplotlib.patches import Polygon
from shapely.geometry import shape

DIMENSIONS = ("hazard", "exposure", "vulnerability", "lack_of_coping")


def write(table: dict[str, Any], geometries: dict[str, Any], out: Path, top: int = 20) -> list[Path]:
    """Write map.png, top.png, sensitivity.png and index.html into ``out``; returns the files."""
    out.mkdir(parents=True, exist_ok=True)
    files = [_map(table, geometries, out / "map.png"), _top(table, out / "top.png", top)]
    if (table.get("sensitivity") or {}).get("samples"):
        files.append(_bands(table, out / "sensitivity.png", top))
    files.append(_html(table, out / "index.html", [f.name for f in files], top))
    return files


def _map(table: dict[str, Any], geometries: dict[str, Any], path: Path) -> Path:
    patches, values = [], []
    for row in table["areas"]:
        geometry = geometries.get(row["code"])
        if not geometry:
            continue
        geom = shape(geometry)
        for poly in getattr(geom, "geoms", [geom]):
            patches.append(Polygon(list(poly.exterior.coords), closed=True))
            values.append(row["risk"] if row["risk"] is not None else float("nan"))
    fig, ax = plt.subplots(figsize=(9, 7))
    cmap = plt.get_cmap("OrRd").with_extremes(bad="#dddddd")
    collection = PatchCollection(patches, cmap=cmap, edgecolor="#666666", linewidth=0.2)
    collection.set_array(values)
    ax.add_collection(collection)
    ax.autoscale_view()
    ax.set_aspect(1.25)  # roughly equal distances at Seoul's latitude (1 / cos 37.5°)
    ax.set_axis_off()
    fig.colorbar(collection, ax=ax, shrink=0.7, label="risk index (1–10)")
    ax.set_title(f"Risk index by {table['level']} (grey: unranked)")
    return _save(fig, path)


def _top(table: dict[str, Any], path: Path, top: int) -> Path:
    rows = [r for r in table["areas"] if r["rank"]][:top][::-1]
    fig, ax = plt.subplots(figsize=(9, max(3, 0.35 * len(rows) + 1)))
    left = [0.0] * len(rows)
    for dim in DIMENSIONS:
        widths = [(r.get(dim) or 0) / len(DIMENSIONS) for r in rows]
        ax.barh([_label(r) for r in rows], widths, left=left, label=dim)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    ax.set_xlabel("dimension scores / 4 (stacked; the index is their geometric mean)")
    ax.set_title(f"Top {len(rows)} {table['level']}s by risk")
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def _bands(table: dict[str, Any], path: Path, top: int) -> Path:
    rows = [r for r in table["areas"] if r["rank"] and r["rank_band_90"]][:top]
    fig, ax = plt.subplots(figsize=(9, max(3, 0.35 * len(rows) + 1)))
    y = list(range(len(rows)))[::-1]
    lows = [r["rank"] - r["rank_band_90"][0] for r in rows]
    highs = [r["rank_band_90"][1] - r["rank"] for r in rows]
    ax.errorbar([r["rank"] for r in rows], y, xerr=[[max(v, 0) for v in lows], [max(v, 0) for v in highs]],
                fmt="o", capsize=3)
    ax.set_yticks(y, [_label(r) for r in rows])
    s = table["sensitivity"]
    ax.set_xlabel(f"rank (dot) and 90% band under ±{s['weight_spread']:.0%} weight changes, {s['samples']} samples")
    ax.set_title(f"Rank stability: median Spearman ρ = {s['spearman_rho']['median']}")
    return _save(fig, path)


def _label(row: dict[str, Any]) -> str:
    # matplotlib's default font has no Hangul: label with the code, names go in the HTML table.
    return f"{row['rank']}. {row['code']}"


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _html(table: dict[str, Any], path: Path, images: list[str], top: int) -> Path:
    m = table["method"]
    e = html.escape
    missing = "".join(f"<li><b>{e(x['indicator'])}</b> ({e(x['dimension'])}): {e(x['reason'])}</li>"
                      for x in table["missing"]) or "<li>none</li>"
    used = "".join(f"<li>{e(i['name'])} — {e(i['dimension'])}, weight {i['weight']}, "
                   f"{'used' if i['used'] else 'not used'}: {e(i['about'])}"
                   f"{' [' + e(i['data']) + ']' if i['data'] else ''}</li>" for i in m["indicators"])
    header = ("<tr><th>rank</th><th>code</th><th>name</th><th>risk</th>"
              + "".join(f"<th>{d}</th>" for d in DIMENSIONS) + "<th>90% rank band</th><th>from district</th></tr>")
    body = "".join(
        f"<tr><td>{r['rank'] or '–'}</td><td>{e(r['code'])}</td><td>{e(r['name_ko'])}</td><td>{r['risk']}</td>"
        + "".join(f"<td>{r.get(d)}</td>" for d in DIMENSIONS)
        + f"<td>{r['rank_band_90'] or ''}</td><td>{', '.join(r['from_district'])}</td></tr>"
        for r in table["areas"][: max(top, 50)]
    )
    s = table.get("sensitivity") or {}
    sens = (f"<p>Median Spearman ρ {s['spearman_rho']['median']} (5th percentile {s['spearman_rho']['p05']}) over "
            f"{s['samples']} samples with weights × U(1 ± {s['weight_spread']}); the top {s['top_n']} kept "
            f"{s['top_n_kept_share']} of their places on average. Leave-one-out ρ: "
            f"{e(', '.join(f'{k} {v}' for k, v in s['leave_one_out'].items()))}.</p>") if s.get("samples") else ""
    images_html = "".join(f'<p><img src="{e(name)}" alt="{e(name)}" style="max-width:100%"></p>'
                          for name in images)
    page = f"""<!doctype html>
<html lang="ko"><head><meta charset="utf-8"><title>지역 위험도 평가 · Regional risk assessment</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 6px;font-size:13px}}</style></head><body>
<h1>지역 위험도 평가 · Regional risk assessment ({e(table['level'])})</h1>
<p>Method {e(m['name'])}: {e(m['framework'])}; indicators min-max normalised to {m['normalised_range']},
weighted mean within each dimension, {e(m['aggregation'])} mean of the dimensions
({', '.join(map(e, m['dimensions_used']))}). Missing dimensions: {', '.join(m['dimensions_missing']) or 'none'}.</p>
<h2>Missing indicators · 자료 없음</h2><ul>{missing}</ul>
<h2>Sensitivity · 민감도 분석</h2>{sens}
{images_html}
<h2>Ranking · 순위</h2><table>{header}{body}</table>
<h2>Indicators · 지표</h2><ul>{used}</ul>
</body></html>"""
    path.write_text(page, encoding="utf-8")
    return path
