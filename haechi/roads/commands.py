"""``haechi roads``: import a real road extract, generate the synthetic grid, describe the graph."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from haechi.core.settings import get_settings

app = typer.Typer(help="Road graph, routing, evacuation, coverage · 도로망 · 경로 · 대피 · 골든타임 커버리지.",
                  no_args_is_help=True)
console = Console()
OutPath = Annotated[Path | None, typer.Option("--out", help="Cache file (default HAECHI_ROAD_GRAPH)")]


def _steps() -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console)


@app.command("import")
def import_roads(
    path: Annotated[Path, typer.Argument(exists=True, help="OSM .osm/.osm.pbf, .graphml, or a standard node-link "
                                         "folder / MOCT_LINK file (.shp or .csv) · 표준노드링크")],
    out: OutPath = None,
    crs: Annotated[str | None, typer.Option(help="CRS of projected node coordinates without a .prj "
                                            "(node-link; default EPSG:5186, the standard's own)")] = None,
) -> None:
    """Build the road graph from a real network and cache it · 실제 도로망 가져오기 (OSM, 표준노드링크)."""
    from pyproj.exceptions import CRSError

    from .city_pack import atomic_cache
    from .osm import RoadImportError, load_roads

    target = out or Path(get_settings().road_graph)
    with _steps() as progress:
        task = progress.add_task(f"도로망 읽는 중 · reading {path.name}", total=None)
        try:
            graph = load_roads(path, crs)
        except (RoadImportError, RuntimeError, CRSError) as e:
            console.print(f"[red]가져오기 실패 · import failed:[/red] {e}")
            raise typer.Exit(1) from None
        progress.update(task, description="랜드마크 계산 · computing landmarks and saving the cache")
        atomic_cache(graph, target)
    _describe(graph, target)


@app.command("generate")
def generate(
    side: Annotated[int, typer.Option(min=2, max=1000, help="Grid side (316 → ~100,000 nodes, Seoul's size)")] = 316,
    out: OutPath = None,
) -> None:
    """Build the SYNTHETIC grid graph over Seoul (demo/benchmarks only) · 합성 격자 도로망 (시연용)."""
    from .service import build_cache
    from .synthetic import grid_graph

    target = out or Path(get_settings().road_graph)
    with _steps() as progress:
        progress.add_task("합성 도로망 생성 · generating the synthetic grid and landmarks", total=None)
        graph = grid_graph(side)
        build_cache(graph, target)
    console.print("[yellow]합성(가상) 도로망입니다 · SYNTHETIC road graph: not Seoul's real streets.[/yellow]")
    _describe(graph, target)


@app.command("info")
def info(path: OutPath = None) -> None:
    """Describe the cached road graph · 도로망 정보."""
    from .graph import RoadGraph

    target = path or Path(get_settings().road_graph)
    if not target.exists():
        console.print(f"도로망 없음 · no road graph at {target}: run `haechi roads import FILE`")
        raise typer.Exit(1)
    _describe(RoadGraph.load(target), target)


def _describe(graph, target: Path) -> None:
    label = "SYNTHETIC 합성" if graph.synthetic else "real 실제"
    console.print(f"{target}: {graph.node_count:,} nodes · {graph.arc_count:,} arcs ({label}) — "
                  f"{graph.meta.get('source')}")
    counts = graph.meta.get("counts")
    if counts:  # what the node-link reader left out, and why (haechi/roads/node_link.py)
        console.print(f"  {counts['links']:,} links read: {counts['links_unknown_end']:,} with an end node not in the "
                      f"data, {counts['links_not_in_use']:,} not in use (ROAD_USE), "
                      f"{counts['links_outside_main_part']:,} outside the connected network; speed from the posted "
                      f"limit on {counts['speed_from_limit_share']:.1%} of links, else the road rank's default")
    if graph.meta.get("note"):
        console.print(f"  [yellow]{graph.meta['note']}[/yellow]")
