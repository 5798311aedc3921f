"""The packages depend one way: core <- quality_checks <- the Dagster layer (assets, resources,
definitions, CLI). The core imports neither the Dagster layer nor quality_checks; quality_checks
imports only the core; and no module reaches itself through a cycle of imports. Imports inside
functions count too: a lazy import is still a dependency."""

import ast
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("synth_assets", "quality_checks")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """Our modules that ``path`` imports (``from pkg import mod`` resolves to the module)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and not name.endswith("__init__"):
                out.add(name)
    return out


def graph() -> dict[str, set[str]]:
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    modules = {module_name(p) for p in files}
    return {module_name(p): imports_of(p, modules) - {module_name(p)} for p in files}


def layer(module: str) -> str:
    if module.startswith("synth_assets.core"):
        return "core"
    if module.startswith("quality_checks"):
        return "quality_checks"
    return "dagster"


ALLOWED = {"core": {"core"}, "quality_checks": {"core", "quality_checks"},
           "dagster": {"core", "quality_checks", "dagster"}}


def test_each_layer_imports_only_the_layers_below_it():
    wrong = sorted(f"{m} ({layer(m)}) imports {d} ({layer(d)})"
                   for m, deps in graph().items() for d in deps
                   if layer(d) not in ALLOWED[layer(m)] and d not in PACKAGES)
    assert not wrong, "\n".join(wrong)


def test_no_module_imports_itself_through_a_cycle():
    g = {m: {d for d in deps if d not in PACKAGES} for m, deps in graph().items()}
    try:
        tuple(TopologicalSorter(g).static_order())
    except CycleError as exc:
        raise AssertionError(f"import cycle: {' -> '.join(exc.args[1])}") from None


def test_the_checker_sees_a_cycle_and_a_layer_violation(tmp_path, monkeypatch):
    """The rules above would catch what they claim to: a planted cycle and an upward import."""
    pkg = tmp_path / "synth_assets" / "core"
    pkg.mkdir(parents=True)
    (tmp_path / "synth_assets" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from synth_assets.core import b\n")
    (pkg / "b.py").write_text("def f():\n    from synth_assets.core.a import x\n    from synth_assets.resources import R\n")
    (tmp_path / "synth_assets" / "resources.py").write_text("")
    (tmp_path / "quality_checks").mkdir()
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    g = graph()
    assert g["synth_assets.core.b"] == {"synth_assets.core.a", "synth_assets.resources"}
    try:
        tuple(TopologicalSorter(g).static_order())
        raise AssertionError("the cycle a -> b -> a was not found")
    except CycleError:
        pass
    assert layer("synth_assets.resources") not in ALLOWED[layer("synth_assets.core.b")]
