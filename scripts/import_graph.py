"""A picture of the platform's imports: every module of synth_assets and quality_checks, the core
clustered by stage (tasks, generators, sandbox, ... training) inside the core, the Dagster layer
beside it, as Graphviz DOT (render with `dot -Tsvg`), and a summary line naming any import that
points up the stage order, any Dagster import in the core, or a cycle. The same rules are enforced
by tests/core/test_import_layers.py.

    .venv/bin/python scripts/import_graph.py > imports.dot && dot -Tsvg imports.dot > imports.svg
"""

import os
import sys
from graphlib import CycleError, TopologicalSorter

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tests.core.test_import_layers import PACKAGES, STAGES, graph, layer, stage, violations


def main() -> None:
    full = graph()
    g = {m: {d for d in deps if d not in PACKAGES} for m, deps in full.items() if m not in PACKAGES}
    print("digraph imports {\n  rankdir=BT; node [shape=box, fontsize=10];")
    print('  subgraph "cluster_core" { label="synth_assets/core (no Dagster)";')
    for s in STAGES:
        print(f'    subgraph "cluster_{s}" {{ label="{s}";')
        for m in sorted(x for x in g if layer(x) == "core" and stage(x) == s):
            print(f'      "{m}";')
        print("    }")
    print("  }")
    print('  subgraph "cluster_dagster" { label="the Dagster layer";')
    for m in sorted(x for x in g if layer(x) == "dagster"):
        print(f'    "{m}";')
    print("  }")
    for m, deps in sorted(g.items()):
        for d in sorted(deps):
            print(f'  "{m}" -> "{d}";')
    print("}")
    try:
        tuple(TopologicalSorter(g).static_order())
        cycle = None
    except CycleError as exc:
        cycle = exc.args[1]
    edges = sum(len(v) for v in g.values())
    wrong = violations(full)
    print(
        f"// {len(g)} modules, {edges} imports; against the stage order: {wrong or 'none'}; cycle: {cycle or 'none'}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
