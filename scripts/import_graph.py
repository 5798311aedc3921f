"""A picture of the platform's imports: every module of synth_assets and quality_checks, grouped by
layer, as Graphviz DOT (render with `dot -Tsvg`), and a summary line naming any upward import or
cycle. The same rules are enforced by tests/test_import_layers.py.

    .venv/bin/python scripts/import_graph.py > imports.dot
"""

import os
import sys
from graphlib import CycleError, TopologicalSorter

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tests.test_import_layers import ALLOWED, PACKAGES, graph, layer


def main() -> None:
    g = {m: {d for d in deps if d not in PACKAGES} for m, deps in graph().items() if m not in PACKAGES}
    print("digraph imports {\n  rankdir=BT; node [shape=box, fontsize=10];")
    for name in ("core", "quality_checks", "dagster"):
        print(f'  subgraph "cluster_{name}" {{ label="{name}";')
        for m in sorted(x for x in g if layer(x) == name):
            print(f'    "{m}";')
        print("  }")
    for m, deps in sorted(g.items()):
        for d in sorted(deps):
            print(f'  "{m}" -> "{d}";')
    print("}")
    upward = [(m, d) for m, deps in g.items() for d in deps if layer(d) not in ALLOWED[layer(m)]]
    try:
        tuple(TopologicalSorter(g).static_order())
        cycle = None
    except CycleError as exc:
        cycle = exc.args[1]
    edges = sum(len(v) for v in g.values())
    print(
        f"// {len(g)} modules, {edges} imports; upward imports: {upward or 'none'}; cycle: {cycle or 'none'}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
