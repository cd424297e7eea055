"""Measure the house: imports between capabilities, circles, upward arrows.

Run as `python tools/house.py` (or `make house`); the closing notes of issue 14 quote its output
measured on the code before and after.  It reads the import graph with grimp, the library
import-linter itself uses, so these figures and `make lint`'s contracts see the same imports.
"""

from __future__ import annotations

import sys
from collections import Counter
from itertools import combinations

import grimp

# Floors, lowest first; a module may import from its own floor or those below.
FLOORS: list[set[str]] = [
    {"core"},
    {"model"},
    {"store", "bus"},
    {"cities"},
    {
        "alerts", "care", "imports", "ingest", "predict", "reports", "response", "risk",
        "roads", "simulation", "warehouse", "warnings",
    },
    {"runtime", "demo", "api", "web", "cli", "clikit", "worker"},
]
CAPABILITIES = FLOORS[4]


def top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def floor_of(package: str) -> int | None:
    return next((i for i, floor in enumerate(FLOORS) if package in floor), None)


def measure(graph: grimp.ImportGraph) -> dict[str, object]:
    across: list[tuple[str, str]] = []
    upward: list[tuple[str, str]] = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            if not imported.startswith("haechi."):
                continue
            a, b = top(importer), top(imported)
            if a == b:
                continue
            if a in CAPABILITIES and b in CAPABILITIES:
                across.append((importer, imported))
            fa, fb = floor_of(a), floor_of(b)
            if fa is not None and fb is not None and fb > fa:
                upward.append((importer, imported))
    packages = sorted({top(m) for m in graph.modules if top(m)})
    two_way = [
        (a, b) for a, b in combinations(packages, 2)
        if graph.direct_import_exists(importer=f"haechi.{a}", imported=f"haechi.{b}",
                                      as_packages=True)
        and graph.direct_import_exists(importer=f"haechi.{b}", imported=f"haechi.{a}",
                                       as_packages=True)
    ]
    return {"across": across, "upward": upward, "two_way": two_way,
            "cycles": module_cycles(graph)}


def module_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected groups of more than one module (import circles)."""
    import networkx as nx

    g = nx.DiGraph()
    for importer in graph.modules:
        for imported in graph.find_modules_directly_imported_by(importer):
            if imported.startswith("haechi.") and not graph.is_module_squashed(imported):
                g.add_edge(importer, imported)
    # A package's __init__ importing its own modules is not a circle anyone reads as one.
    g.remove_edges_from([(a, b) for a, b in g.edges if b.startswith(a + ".")])
    return sorted(sorted(c) for c in nx.strongly_connected_components(g) if len(c) > 1)


def main() -> int:
    graph = grimp.build_graph("haechi", include_external_packages=False)
    found = measure(graph)
    across, upward = found["across"], found["upward"]
    print(f"imports from one capability into another: {len(across)}")
    for (a, b), n in Counter((top(x), top(y)) for x, y in across).most_common():
        print(f"  {a} -> {b}: {n}")
    print(f"upward arrows (a lower floor importing a higher one): {len(upward)}")
    for x, y in upward:
        print(f"  {x} -> {y}")
    print(f"two-way package dependencies: {len(found['two_way'])}")
    for a, b in found["two_way"]:
        print(f"  {a} <-> {b}")
    print(f"import circles between modules: {len(found['cycles'])}")
    for cycle in found["cycles"]:
        print("  " + " <-> ".join(cycle))
    return 0


if __name__ == "__main__":
    sys.exit(main())
