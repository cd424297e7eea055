"""Reports as HTML (figures inline) and PDF (matplotlib's PdfPages: no system packages needed).

Figures are labelled in English: the default matplotlib font has no Hangul; the HTML carries
both languages.
"""

from __future__ import annotations

import base64
import html
import io
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never a window

import matplotlib.pyplot as plt
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from shapely.geometry import shape


@dataclass
class Report:
    """A report: its title, summary lines, tables and figures, rendered to HTML and PDF alike."""

    title: str
    subtitle: str
    summary: list[str] = field(default_factory=list)
    tables: list[tuple[str, list[str], list[list[Any]]]] = field(default_factory=list)
    figures: list[tuple[str, Figure]] = field(default_factory=list)

    def write(self, folder: Path, stem: str) -> tuple[Path, Path]:
        folder.mkdir(parents=True, exist_ok=True)
        html_path, pdf_path = folder / f"{stem}.html", folder / f"{stem}.pdf"
        html_path.write_text(to_html(self), encoding="utf-8")
        to_pdf(self, pdf_path)
        for _, figure in self.figures:
            plt.close(figure)
        return html_path, pdf_path


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def to_html(report: Report) -> str:
    e = html.escape
    parts = [f"""<!doctype html><html lang="ko"><head><meta charset="utf-8"><title>{e(report.title)}</title>
<style>body{{font-family:system-ui,"Noto Sans KR",sans-serif;max-width:1000px;margin:2em auto;line-height:1.5}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #bbb;padding:3px 8px;font-size:14px}}
th{{background:#eef}}img{{max-width:100%}}</style></head><body>
<h1>{e(report.title)}</h1><p>{e(report.subtitle)}</p><ul>"""]
    parts += [f"<li>{e(line)}</li>" for line in report.summary]
    parts.append("</ul>")
    for caption, header, rows in report.tables:
        parts.append(f"<table><caption>{e(caption)}</caption><thead><tr>")
        parts += [f"<th scope=\"col\">{e(h)}</th>" for h in header]
        parts.append("</tr></thead><tbody>")
        for row in rows:
            parts.append("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>")
        parts.append("</tbody></table>")
    for caption, figure in report.figures:
        parts.append(f'<figure><img alt="{e(caption)}" src="data:image/png;base64,{_png(figure)}">'
                     f"<figcaption>{e(caption)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _ascii(text: str) -> str:
    """Text the PDF's default font can draw: Hangul dropped (the HTML keeps it)."""
    kept = "".join(ch for ch in text if ord(ch) < 0x1100 or ord(ch) > 0xD7FF)
    return " ".join(kept.replace("·", "/").split())


def to_pdf(report: Report, path: Path) -> None:
    with PdfPages(path, metadata={"Title": _ascii(report.title) or "Haechi report", "Creator": "Haechi"}) as pdf:
        lines = [_ascii(report.title), _ascii(report.subtitle), ""]
        lines += ["- " + _ascii(s) for s in report.summary]
        for caption, header, rows in report.tables:
            lines += ["", _ascii(caption), " | ".join(_ascii(h) for h in header)]
            lines += [" | ".join(_ascii(str(c)) for c in row) for row in rows[:40]]
        wrapped = [w for line in lines for w in (textwrap.wrap(line, 100) or [""])]
        for start in range(0, len(wrapped), 55):
            page = plt.figure(figsize=(8.27, 11.69))  # A4
            page.text(0.06, 0.96, "\n".join(wrapped[start:start + 55]), va="top", family="monospace", fontsize=8)
            pdf.savefig(page)
            plt.close(page)
        for caption, figure in report.figures:
            figure.suptitle(_ascii(caption), fontsize=10)
            pdf.savefig(figure, bbox_inches="tight")


def area_map(areas: list[dict[str, Any]], highlight: dict[str, float], points: list[tuple[float, float, str]],
             title: str) -> Figure:
    """District outlines shaded by ``highlight`` (code → value), with labelled points."""
    figure, ax = plt.subplots(figsize=(7, 6))
    top = max(highlight.values(), default=0) or 1
    for a in areas:
        if not a.get("geometry"):
            continue
        geometry = shape(a["geometry"])
        polygons = geometry.geoms if hasattr(geometry, "geoms") else [geometry]
        value = highlight.get(a["code"])
        for polygon in polygons:
            x, y = polygon.exterior.xy
            ax.fill(x, y, color=plt.cm.OrRd(0.15 + 0.8 * value / top) if value else "#f2f2f2",
                    edgecolor="#555", linewidth=0.5)
    for lon, lat, label in points:
        ax.plot(lon, lat, "o", color="#0b3d91", markersize=5)
        ax.annotate(_ascii(label), (lon, lat), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_aspect(1 / 0.79)  # ~cos(37.5°): degrees of longitude are shorter at Seoul's latitude
    ax.set_title(title)
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    return figure
